"""GBFS client: discovery from `gbfs.json`, then `station_status` and `station_information`.

Works for any GBFS system; handles Vélib's quirks (no `last_updated` but `lastUpdatedOther`, int64
`station_id`, bike types as a list of one-key objects, camelCase duplicates) in `formats`.
"""

from dataclasses import dataclass
from datetime import datetime

from velib_assets.sources.formats import GBFS_TIMESTAMP_KEYS, CaptureParseError, gbfs_feed_time, load_json
from velib_assets.sources.http import FeedError, FetchedBody, HttpClient


@dataclass(frozen=True)
class GbfsCapture:
    """One fetched GBFS document, its verbatim bytes and the feed's own timestamp.

    `stated_time` is the timestamp as sent, to name it when `feed_time` could not make sense of it."""

    fetched: FetchedBody
    feed_time: datetime | None
    stated_time: object = None


def feed_urls(discovery: object) -> dict[str, str]:
    """Feed name -> URL from a `gbfs.json` (v1/v2 nest feeds per language, v3 does not)."""
    data = discovery.get("data") if isinstance(discovery, dict) else None
    if not isinstance(data, dict):
        raise CaptureParseError("wrong shape: gbfs.json has no data object")
    feeds = data.get("feeds")
    if feeds is None:
        languages = [v for v in data.values() if isinstance(v, dict) and "feeds" in v]
        feeds = languages[0]["feeds"] if languages else None
    if not isinstance(feeds, list):
        raise CaptureParseError("wrong shape: gbfs.json lists no feeds")
    return {
        f["name"]: f["url"]
        for f in feeds
        if isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("url"), str)
    }


def stated_time(document: object) -> object:
    """The first timestamp field the document carries, verbatim (None if it has none)."""
    if isinstance(document, dict):
        for key in GBFS_TIMESTAMP_KEYS:
            if document.get(key) is not None:
                return document[key]
    return None


class GbfsClient:
    """Discovery is remembered per process (a sensor polls every minute; feeds move once in years)
    and forgotten as soon as a feed it pointed to fails, so a moved feed is found again."""

    _discovered: dict[str, dict[str, str]] = {}

    def __init__(self, http: HttpClient, discovery_url: str) -> None:
        self.http = http
        self.discovery_url = discovery_url

    def urls(self) -> dict[str, str]:
        if self.discovery_url not in self._discovered:
            fetched = self.http.get(self.discovery_url)
            try:  # load_json turns whatever json.loads raises (too deep, too long a number) into this
                self._discovered[self.discovery_url] = feed_urls(load_json(fetched.body))
            except CaptureParseError as exc:
                raise FeedError(f"{self.discovery_url}: unusable discovery ({exc})") from exc
        return self._discovered[self.discovery_url]

    def _fetch(self, feed: str) -> GbfsCapture:
        url = self.urls().get(feed)
        if url is None:
            raise FeedError(f"{self.discovery_url}: no {feed} feed listed")
        try:
            fetched = self.http.get(url)
        except FeedError:
            self._discovered.pop(self.discovery_url, None)
            raise
        try:  # a feed's content is never the tick's error: unreadable JSON is an unavailable feed
            document = load_json(fetched.body)
        except CaptureParseError as exc:
            raise FeedError(f"{url}: {exc}") from exc
        return GbfsCapture(fetched, gbfs_feed_time(document), stated_time(document))

    def station_status(self) -> GbfsCapture:
        return self._fetch("station_status")

    def station_information(self) -> GbfsCapture:
        return self._fetch("station_information")
