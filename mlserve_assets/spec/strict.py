"""The base of every spec object: an unknown field is an error, a parsed spec never changes."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Refuses fields it does not declare (a typo in YAML is not silently ignored); frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
