"""The data stage: the source's rows, then the rows that passed the spec's blocking checks."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.ml.split import data_version
from mlserve_assets.ml.validation import (
    CHECK_DESCRIPTIONS,
    kept_columns,
    labelled_rows,
    run_checks,
)


def data_assets(m: ModelAssets) -> list[dg.AssetsDefinition]:
    """``dataset`` and ``validated_dataset`` for one model."""
    spec = m.spec

    @dg.asset(
        key=m.key("dataset"), kinds={"pandas"}, description=f"Raw rows for {m.name}.", **m.common()
    )
    def dataset() -> dg.Output[pd.DataFrame]:
        frame = spec.source.load()
        return dg.Output(
            frame,
            data_version=dg.DataVersion(data_version(frame)),
            metadata={
                "rows": len(frame),
                "columns": len(frame.columns),
                "source": spec.source.kind,
            },
        )

    @dg.asset(
        key=m.key("validated_dataset"),
        ins=m.ins("dataset"),
        kinds={"pandas"},
        description=(
            "Target and features only, after the spec's blocking data checks; rows without a "
            "target left out unless the spec says target_missing: error."
        ),
        check_specs=[
            dg.AssetCheckSpec(c, asset=m.key("validated_dataset"), blocking=True, description=text)
            for c, text in CHECK_DESCRIPTIONS.items()
        ],
        **m.common(),
    )
    def validated_dataset(dataset: pd.DataFrame) -> Iterator[dg.Output | dg.AssetCheckResult]:
        labelled, unlabelled = labelled_rows(spec, dataset)
        outcomes = run_checks(spec, labelled)
        ok = all(o.passed for o in outcomes)
        selected = labelled[kept_columns(spec, labelled)] if ok else labelled
        yield dg.Output(
            selected,
            metadata={
                "rows": len(selected),
                "columns": len(selected.columns),
                "unlabelled_rows_left_out": unlabelled,
            },
        )
        for outcome in outcomes:
            yield dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                description="; ".join(outcome.failures) or None,
                metadata={"failures": len(outcome.failures)},
            )

    return [dataset, validated_dataset]
