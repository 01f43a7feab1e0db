"""Data sources behind one interface: ``demo`` (default, offline), ``yahoo`` and ``files``."""

from __future__ import annotations

from quant_pipeline.settings import Settings
from quant_pipeline.sources.base import FetchRequest, Source, SourceError

__all__ = ["FetchRequest", "Source", "SourceError", "make_source"]


def make_source(
    settings: Settings,
    max_failed_share: float = 0.5,
    run_id: str | None = None,
    benchmark_tickers: tuple[str, ...] | None = None,
) -> Source:
    """Build the source named by ``settings.source`` (lazy imports: yfinance is slow).

    ``run_id`` labels the yahoo ingest log rows (default: a random id); ``benchmark_tickers``
    are fetched by yahoo beside the universe (default SPY, IWM).
    """
    if settings.source == "demo":
        from quant_pipeline.sources.demo import DemoSource

        return DemoSource(
            n_tickers=settings.demo_tickers,
            start=settings.demo_start,
            end=settings.demo_end,
            seed=settings.demo_seed,
        )
    if settings.source == "files":
        from quant_pipeline.sources.files import FilesSource

        return FilesSource(settings.data_dir, universe=settings.universe)
    if settings.source == "yahoo":
        from quant_pipeline.sources.yahoo import YahooSource

        # No universe set: the current members of the shipped S&P 500 list.
        extra = {} if benchmark_tickers is None else {"benchmark_tickers": benchmark_tickers}
        return YahooSource(
            universe_path=settings.universe,
            max_failed_share=max_failed_share,
            run_id=run_id,
            **extra,
        )
    raise SourceError(f"unknown source {settings.source!r}")
