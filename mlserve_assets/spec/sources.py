"""Where a model's rows come from.

Each source knows how to read its whole table and, more cheaply, its column names, so that a spec
can be checked against the real columns before any asset runs. Kept free of Dagster so the CLI and
the service can use it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn import datasets

BUNDLED_DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
}


class _Source(BaseModel):
    """Every source offers ``load()`` (all rows) and ``columns()`` (None if unknowable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SklearnSource(_Source):
    """A dataset bundled with scikit-learn (never one that downloads at run time)."""

    kind: Literal["sklearn"]
    dataset: Literal["breast_cancer", "diabetes", "digits", "iris", "wine"]

    def load(self) -> pd.DataFrame:
        """Load the bundled set with its target in a column named ``target``."""
        return BUNDLED_DATASETS[self.dataset](as_frame=True).frame

    def columns(self) -> list[str]:
        """Column names of the bundled set."""
        return list(self.load().columns)


class FileSource(_Source):
    """A CSV or Parquet file; a relative path is resolved against the spec file's folder."""

    kind: Literal["file"]
    path: Path

    @model_validator(mode="after")
    def _known_format(self) -> FileSource:
        if self.path.suffix.lower() not in {".csv", ".parquet"}:
            raise ValueError(f"path must end in .csv or .parquet, got {self.path.name!r}")
        return self

    def resolved(self, base: Path) -> FileSource:
        """The same source with its path anchored at ``base``."""
        path = self.path if self.path.is_absolute() else (base / self.path).resolve()
        return self.model_copy(update={"path": path})

    def load(self) -> pd.DataFrame:
        """Read the whole file."""
        if self.path.suffix.lower() == ".csv":
            return pd.read_csv(self.path)
        return pd.read_parquet(self.path)

    def columns(self) -> list[str]:
        """Read only the header (CSV) or schema (Parquet)."""
        if not self.path.exists():
            raise ValueError(f"file {str(self.path)!r} does not exist")
        if self.path.suffix.lower() == ".csv":
            return list(pd.read_csv(self.path, nrows=0).columns)
        import pyarrow.parquet as pq

        return list(pq.read_schema(self.path).names)


class SqlSource(_Source):
    """A query against a database named by a SQLAlchemy URL, given inline or by environment."""

    kind: Literal["sql"]
    query: str = Field(min_length=1)
    url: str | None = None
    url_env: str | None = Field(
        default=None, description="Name of an environment variable holding the URL (for secrets)."
    )

    @model_validator(mode="after")
    def _one_url(self) -> SqlSource:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self

    def database_url(self) -> str:
        """The URL, read from the environment at run time when ``url_env`` names it."""
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "")
        if not value:
            raise RuntimeError(f"environment variable {self.url_env} (the SQL source URL) is unset")
        return value

    def load(self) -> pd.DataFrame:
        """Run the query."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.database_url())
        try:
            with engine.connect() as conn:
                return pd.read_sql_query(sqlalchemy.text(self.query), conn)
        finally:
            engine.dispose()

    def columns(self) -> None:
        """Unknown until the query runs: the data checks cover it then."""
        return None


Source = Annotated[SklearnSource | FileSource | SqlSource, Field(discriminator="kind")]
