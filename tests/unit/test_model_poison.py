"""Model versions as a broken trainer, a full disk or a person with an editor could leave them: each is
refused with its reason, the current model is kept, and nothing raises out of the registry."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.registry import (
    METADATA_FILE,
    PARAMS_FILE,
    ModelRejected,
    RegistryWatcher,
    load_latest,
    load_version,
    publish,
)
from tests.unit.test_ml_registry import DAY, NOW, artifact, info


def _dir(model_dir: Path, version: int) -> Path:
    return model_dir / f"v{version:06d}"


def _edit_metadata(model_dir: Path, version: int, change: Callable[[dict[str, Any]], Any]) -> None:
    path = _dir(model_dir, version) / METADATA_FILE
    data = json.loads(path.read_bytes())
    replaced = change(data)  # None: `data` was changed in place; (document,): write that instead
    path.write_text(json.dumps(data if replaced is None else replaced[0], allow_nan=True))


def _set_params(model_dir: Path, version: int, raw: bytes) -> None:
    """New params.json bytes with a matching hash: only validation of the content can refuse them."""
    (_dir(model_dir, version) / PARAMS_FILE).write_bytes(raw)
    _edit_metadata(model_dir, version, lambda m: m.update(content_sha256=hashlib.sha256(raw).hexdigest()))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m.update({key: value})


METADATA_CASES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a list": lambda m: ([],),
    "null": lambda m: (None,),
    "version 1e400": _set("version", 1e400),
    "version as text": _set("version", "2"),
    "trained_at NaN": _set("trained_at", math.nan),
    "trained_at infinite": _set("trained_at", math.inf),
    "trained_at text": _set("trained_at", "yesterday"),
    "no trained_at": lambda m: m.pop("trained_at") and None,
    "feature_names a number": _set("feature_names", 3),
    "metrics a list": _set("metrics", [1]),
    "metric NaN": _set("metrics", {"bic": math.nan}),
    "hash not hex": _set("content_sha256", "../../etc/passwd"),
    "window reversed": _set("data_since_ts_ns", 2**62),
    "wrong format": _set("format", "pickle"),
}


@pytest.mark.parametrize("case", METADATA_CASES)
def test_bad_metadata_is_refused_with_a_reason_and_the_current_model_kept(tmp_path: Path, case: str) -> None:
    publish(tmp_path, artifact(1), info())
    watcher = RegistryWatcher(tmp_path, max_age_s=DAY, poll_interval_s=0.0)
    assert watcher.poll(NOW) is not None
    publish(tmp_path, artifact(2), info())
    _edit_metadata(tmp_path, 2, METADATA_CASES[case])
    with pytest.raises(ModelRejected, match=r"^model v2: metadata unreadable: "):
        load_version(tmp_path, 2)
    assert watcher.poll(NOW + 1) is None
    assert watcher.version == 1 and watcher.active(NOW + 1) is not None
    latest = load_latest(tmp_path, max_age_s=DAY, now=NOW + 1)
    assert latest is not None and latest.version == 1  # the bad newest is skipped


PARAMS_CASES = {
    "a list": b"[]",
    "null": b"null",
    "not JSON": b"{weights",
    "not UTF-8": b"\xff\xfe{}",
    "nested 10,000 deep": b'{"a": ' * 10_000 + b"1" + b"}" * 10_000,
    "an integer beyond a float": json.dumps({**artifact(2).to_json(), "weights": [10**400, 0, 0]}).encode(),
    "NaN weights": json.dumps({**artifact(2).to_json(), "weights": [math.nan, 0.5, 0.5]}).encode(),
    "ragged means": json.dumps({**artifact(2).to_json(), "means": [[1.0], [1.0, 2.0]]}).encode(),
}


@pytest.mark.parametrize("case", PARAMS_CASES)
def test_bad_params_with_a_matching_hash_are_refused(tmp_path: Path, case: str) -> None:
    publish(tmp_path, artifact(1), info())
    publish(tmp_path, artifact(2), info())
    _set_params(tmp_path, 2, PARAMS_CASES[case])
    with pytest.raises(ModelRejected, match=r"^model v2: artifact invalid: "):
        load_version(tmp_path, 2)
    latest = load_latest(tmp_path, max_age_s=DAY, now=NOW)
    assert latest is not None and latest.version == 1


def test_a_model_from_the_future_is_refused_as_it_would_never_expire(tmp_path: Path) -> None:
    publish(tmp_path, artifact(1), info(NOW))
    publish(tmp_path, artifact(2), info(NOW + 10 * 365 * DAY))
    latest = load_latest(tmp_path, max_age_s=DAY, now=NOW + 1)
    assert latest is not None and latest.version == 1
    watcher = RegistryWatcher(tmp_path, max_age_s=DAY, poll_interval_s=0.0)
    adopted = watcher.poll(NOW + 1)
    assert adopted is not None and adopted.version == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)


METADATA_KEYS = [
    "format", "version", "trained_at", "data_since_ts_ns", "data_until_ts_ns", "feature_names", "metrics",
    "sklearn_version", "content_sha256", "extra",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(METADATA_KEYS), value=json_values, params=st.none() | json_values)
def test_any_metadata_or_params_value_is_loaded_or_refused_never_raised(
    tmp_path: Path, key: str, value: Any, params: Any
) -> None:
    model_dir = tmp_path / f"m{abs(hash((key, repr(value), repr(params))))}"
    publish(model_dir, artifact(1), info())
    if params is None:
        _edit_metadata(model_dir, 1, _set(key, value))
    else:
        _set_params(model_dir, 1, json.dumps(params, allow_nan=True).encode())
    try:
        model = load_version(model_dir, 1)
    except ModelRejected as exc:
        assert exc.version == 1 and exc.reason
        return
    assert model.trained_at is not None and math.isfinite(model.trained_at)
