"""A ``requests.Session`` that answers yfinance's HTTP calls from recorded Yahoo responses.

yfinance 1.7 accepts ``session=`` (a ``requests.Session`` subclass passes its type check), so
real payloads recorded by node-yahoo-finance2 and yfinance-rs (``../shared/fixtures/yahoo/``) go
through yfinance's own parsing, offline. Routes (by URL path):

- ``fc.yahoo.com`` (cookie) -> 200 empty; ``/v1/test/getcrumb`` -> a crumb
- ``/v8/finance/chart/{T}`` -> the recorded chart of T (``historical-via-chart-T-*``, ``chart-T-*``)
- ``/ws/fundamentals-timeseries/v1/finance/timeseries/{T}`` -> the recorded series of T for the
  requested timescale (quarterly / annual), filtered to the ``type=`` list in the URL
- ``/v7/finance/quote`` -> ``quote_v7_T.json``; ``/v10/finance/quoteSummary/{T}`` -> the recorded
  modules of T merged into one result
- anything else (earnings calendar page, consent pages) -> 404

Unknown symbols get Yahoo's real "Not Found" answers. ``script(route, symbol, *answers)`` queues
scripted answers served before the fixtures: an ``int`` status (429 -> "Too Many Requests"),
``"html"`` (an HTML error page with status 200), ``"malformed"`` (broken JSON), ``"empty"`` (a
well-formed result with no data), or an exception instance to raise.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

HTML_ERROR = (
    "<!DOCTYPE html><html><head><title>Yahoo</title></head>"
    "<body><h1>Will be right back...</h1><p>Our engineers are working quickly.</p></body></html>"
)


def _load_body(path: Path) -> Any:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "response" in data and "request" in data:
        return data["response"]["bodyJson"]
    return data


class ReplaySession(requests.Session):
    """Serves recorded Yahoo responses by URL path; records every call in ``calls``."""

    def __init__(self, fixtures_dir: Path) -> None:
        super().__init__()
        self.node = Path(fixtures_dir) / "node-yahoo-finance2"
        self.rs = Path(fixtures_dir) / "yfinance-rs"
        self.calls: list[tuple[str, str | None]] = []
        self.params: list[tuple[str, str | None, dict[str, Any]]] = []
        self._script: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self._lock = threading.Lock()

    # -- scripting -------------------------------------------------------------------------------
    def script(self, route: str, symbol: str, *answers: Any) -> None:
        """Queue answers for ``route`` ('chart', 'timeseries', 'quote', 'quoteSummary')."""
        with self._lock:
            self._script[(route, symbol)].extend(answers)

    def count(self, route: str, symbol: str | None = None) -> int:
        """How many calls hit ``route`` (for ``symbol``)."""
        return sum(1 for r, s in self.calls if r == route and (symbol is None or s == symbol))

    # -- fixtures --------------------------------------------------------------------------------
    def _chart(self, symbol: str) -> Any | None:
        patterns = [
            (self.node, f"historical-via-chart-{symbol}-*.json"),
            (self.node, f"chart-{symbol}-*.json"),
            (self.node, f"historical-via-chart-*-{symbol}-*.json"),  # ...-dividends-TSLA-...
            (self.rs, f"history_chart_{symbol}.json"),
        ]
        found = [
            p
            for folder, pattern in patterns
            for p in folder.glob(pattern)
            if ".fake." not in p.name and "interval-" not in p.name  # daily, real recordings
        ]
        if not found:
            return None
        found.sort(key=lambda p: (-p.stat().st_size, p.name))  # the longest recording
        return _load_body(found[0])

    def _timeseries(self, symbol: str, url: str) -> Any:
        query = parse_qs(urlsplit(url).query)
        types = set(",".join(query.get("type", [""])).split(","))
        timescale = "quarterly" if any(t.startswith("quarterly") for t in types) else "annual"
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        files = sorted(self.node.glob(f"fundamentalsTimeSeries-{symbol}-*-{timescale}.json"))
        files += sorted(self.rs.glob(f"timeseries_*_{timescale}_{symbol}.json"))
        for path in files:
            body = _load_body(path)
            for entry in (body.get("timeseries") or {}).get("result") or []:
                kind = (entry.get("meta", {}).get("type") or [None])[0]
                if kind in types and kind not in seen and entry.get(kind) is not None:
                    seen.add(kind)
                    results.append(entry)
        if files:
            # As Yahoo does for a known symbol: a type it has no values for is an entry with its
            # meta only (so a request for a few such types is not an empty result; yfinance's
            # chunked fallback, switched on process-wide by any empty answer, relies on that).
            results += [
                {"meta": {"symbol": [symbol], "type": [kind]}}
                for kind in sorted(types - seen)
                if kind
            ]
        return {"timeseries": {"result": results, "error": None}}

    def _quote_summary(self, symbol: str, modules: list[str]) -> Any | None:
        merged: dict[str, Any] = {}
        for module in modules:
            path = self.node / f"quoteSummary-{module}-{symbol}.json"
            if path.is_file():
                result = (_load_body(path)["quoteSummary"]["result"] or [{}])[0]
                if module in result:
                    merged[module] = result[module]
        for path in sorted(self.rs.glob(f"profile_api_*_{symbol}.json")):
            result = (_load_body(path)["quoteSummary"]["result"] or [{}])[0]
            for module in modules:
                if module in result and module not in merged:
                    merged[module] = result[module]
        if not merged:
            return None
        return {"quoteSummary": {"result": [merged], "error": None}}

    # -- HTTP ------------------------------------------------------------------------------------
    def request(self, method: str, url: str, params: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        params = dict(params or {})
        split = urlsplit(url)
        path = split.path
        if split.hostname == "fc.yahoo.com":
            return self._respond(url, 200, "")
        if path.endswith("/v1/test/getcrumb"):
            return self._respond(url, 200, "replay-crumb")
        route, symbol = self._route(path, params)
        with self._lock:
            self.calls.append((route, symbol))
            self.params.append((route, symbol, params))
            queued = self._script.get((route, symbol or ""))
            answer = queued.pop(0) if queued else None
        if answer is not None:
            return self._scripted(url, route, symbol, answer)
        if route == "chart":
            body = self._chart(symbol)
            if body is None:
                return self._json(url, 404, _not_found("chart", symbol))
            return self._json(url, 200, body)
        if route == "timeseries":
            return self._json(url, 200, self._timeseries(symbol, url))
        if route == "quote":
            path_v7 = self.rs / f"quote_v7_{symbol}.json"
            if path_v7.is_file():
                return self._json(url, 200, _load_body(path_v7))
            return self._json(url, 200, {"quoteResponse": {"result": [], "error": None}})
        if route == "quoteSummary":
            modules = str(params.get("modules", "")).split(",")
            body = self._quote_summary(symbol, modules)
            if body is None:
                return self._json(url, 404, _not_found("quoteSummary", symbol))
            return self._json(url, 200, body)
        return self._respond(url, 404, "<html><body>Not found</body></html>")

    @staticmethod
    def _route(path: str, params: dict[str, Any]) -> tuple[str, str | None]:
        parts = path.rstrip("/").split("/")
        if "/v8/finance/chart/" in path:
            return "chart", parts[-1]
        if "/finance/timeseries/" in path:
            return "timeseries", parts[-1]
        if path.endswith("/v7/finance/quote"):
            return "quote", str(params.get("symbols", ""))
        if "/v10/finance/quoteSummary/" in path:
            return "quoteSummary", parts[-1]
        return "other", None

    def _scripted(self, url: str, route: str, symbol: str | None, answer: Any) -> Any:
        if isinstance(answer, BaseException):
            raise answer
        if answer == "html":
            return self._respond(url, 200, HTML_ERROR, "text/html")
        if answer == "malformed":
            return self._respond(url, 200, '{"chart": {"result": [{"meta": ', "application/json")
        if answer == "empty":
            if route == "chart":
                return self._json(url, 200, {"chart": {"result": [], "error": None}})
            if route == "timeseries":
                return self._json(url, 200, {"timeseries": {"result": [], "error": None}})
            return self._json(url, 200, {route: {"result": [], "error": None}})
        if answer == 429:
            return self._respond(url, 429, "Too Many Requests\r\n", "text/plain")
        if isinstance(answer, int):
            return self._json(url, answer, _not_found(route, symbol))
        raise ValueError(f"unknown scripted answer {answer!r}")

    def _json(self, url: str, status: int, body: Any) -> requests.Response:
        return self._respond(url, status, json.dumps(body), "application/json;charset=utf-8")

    @staticmethod
    def _respond(
        url: str, status: int, text: str, content_type: str = "text/plain"
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.url = url
        response.reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "")
        response.headers["content-type"] = content_type
        response._content = text.encode("utf-8")
        response.encoding = "utf-8"
        return response


def _not_found(route: str, symbol: str | None) -> dict[str, Any]:
    """Yahoo's answer for a symbol it does not know."""
    key = "chart" if route == "chart" else route
    description = (
        "No data found, symbol may be delisted"
        if route == "chart"
        else f"Quote not found for symbol: {symbol}"
    )
    return {key: {"result": None, "error": {"code": "Not Found", "description": description}}}
