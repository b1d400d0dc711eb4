"""The live dashboard: a static page drawn with plotly.js in the browser, over the read-only API.

The server adds no data route of its own: the page reads everything from `/api/...`, so what the
dashboard shows is exactly what the API answers.
"""
