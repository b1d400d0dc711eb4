"""Paris Open Data (Opendatasoft Explore v2.1) client for `velib-disponibilite-en-temps-reel`.

`/exports/json` returns every station in one call and is what captures use. `/records` pages are
only stable with `order_by`, and the API caps `limit` at 100 and `offset + limit` at 10,000.
"""

from typing import Any

from velib_assets.sources.formats import CaptureParseError, load_json
from velib_assets.sources.http import FeedError, FetchedBody, HttpClient

RECORDS_PAGE_LIMIT = 100
RECORDS_WINDOW = 10_000


class OpendataClient:
    def __init__(self, http: HttpClient, dataset_url: str) -> None:
        self.http = http
        self.dataset_url = dataset_url.rstrip("/")

    def export_json(self) -> FetchedBody:
        """The whole dataset in one answer; `timezone=UTC` keeps `duedate` offsets uniform."""
        return self.http.get(f"{self.dataset_url}/exports/json", params={"lang": "fr", "timezone": "UTC"})

    def records(
        self, order_by: str = "stationcode", page_size: int = RECORDS_PAGE_LIMIT
    ) -> list[dict[str, Any]]:
        """All records through `/records`, paged in a stable order within the API's window."""
        limit = min(page_size, RECORDS_PAGE_LIMIT)
        url = f"{self.dataset_url}/records"
        records: list[dict[str, Any]] = []
        offset = 0
        while offset + limit <= RECORDS_WINDOW:
            fetched = self.http.get(url, params={"order_by": order_by, "limit": limit, "offset": offset})
            try:
                page = load_json(fetched.body)
            except CaptureParseError as exc:
                raise FeedError(f"{url}: {exc}") from exc
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise FeedError(f"{url}: wrong shape, no 'results' list")
            records.extend(results)
            total = page.get("total_count", 0)
            offset += limit
            if not results or offset >= total:
                return records
        raise FeedError(f"{url}: more than {RECORDS_WINDOW} records; use /exports/json")
