import datetime as dt

import pytest

from exports import model
from exports.contract import EXPORT_KEYS, Failure

T0 = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=2)


def queued():
    return model.new_export(
        model.new_export_id("12", "34", T0), "12", "34", "9", T0, dt.timedelta(hours=1), "ciphertext"
    )


@pytest.mark.parametrize(
    "value,ok",
    [
        ("1", True),
        ("9223372036854775807", True),
        ("9223372036854775808", False),
        ("0", False),
        ("-1", False),
        ("01", False),
        ("1.0", False),
        ("١٢", False),
        ("", False),
        (None, False),
        ("1 ", False),
        ("99999999999999999999", False),
    ],
)
def test_panoptes_ids(value, ok):
    assert (model.parse_panoptes_id(value) is not None) is ok


def test_export_ids_are_url_safe_sort_newest_first_and_parse_back():
    older = model.new_export_id("12", "34", T0)
    newer = model.new_export_id("12", "34", T0 + dt.timedelta(seconds=1))
    assert newer < older
    assert model.parse_export_id(older) == ("12", "34")
    assert all(c.isalnum() or c == "-" for c in older)
    for bad in ("", "x", "12-34", "12-34-123", "0-34-" + "0" * 21, older + "a", "../" + older):
        assert model.parse_export_id(bad) is None


def test_lease_claims_and_takeover():
    export = model.claim_for_build(queued(), "w1", T0, LEASE)
    assert export.status == "building" and export.lease_owner == "w1"
    with pytest.raises(model.InvalidTransition):
        model.claim_for_build(export, "w2", T0 + dt.timedelta(minutes=1), LEASE)
    taken = model.claim_for_build(export, "w2", T0 + dt.timedelta(minutes=3), LEASE)
    assert taken.lease_owner == "w2"
    with pytest.raises(model.InvalidTransition):
        model.renew_lease(taken, "w1", T0, LEASE)


def test_submission_fence_and_token_discarded():
    export = model.claim_for_build(queued(), "w1", T0, LEASE)
    with pytest.raises(model.InvalidTransition):
        model.start_submission(export, "w1", T0)  # no manifest yet
    export = model.record_manifest(export, "w1", T0, subjects=3, images=5, skipped=1, blob="b.json")
    assert export.token_ciphertext is None
    export = model.start_submission(export, "w1", T0)
    with pytest.raises(model.InvalidTransition):
        model.start_submission(export, "w1", T0)
    export = model.record_submission(export, "abc", T0)
    assert (export.status, export.ml_task_id, export.ml_status) == ("submitted", "abc", "created")


def test_final_states_are_final():
    export = model.fail(queued(), "x", "y", T0)
    assert export.token_ciphertext is None
    for change in (lambda e: model.fail(e, "a", "b", T0), lambda e: model.cancel(e, T0)):
        with pytest.raises(model.InvalidTransition):
            change(export)


def test_stuck_detection_respects_leases_and_delayed_retries():
    threshold = dt.timedelta(minutes=30)
    export = queued()
    assert not model.is_stuck(export, T0 + dt.timedelta(minutes=29), threshold)
    assert model.is_stuck(export, T0 + dt.timedelta(minutes=31), threshold)
    building = model.claim_for_build(export, "w", T0 + dt.timedelta(minutes=31), LEASE)
    assert not model.is_stuck(building, T0 + dt.timedelta(minutes=32), threshold)
    waiting = model.release_lease(building, T0 + dt.timedelta(minutes=31), T0 + dt.timedelta(minutes=61))
    assert not model.is_stuck(waiting, T0 + dt.timedelta(minutes=80), threshold)
    assert model.is_stuck(waiting, T0 + dt.timedelta(minutes=92), threshold)


def test_resource_has_exactly_the_contract_keys():
    resource = model.to_resource(queued(), "https://sa/#/tasks/")
    assert tuple(resource) == EXPORT_KEYS  # the keys, declared once, in order; nothing more
    assert resource["created_at"] == "2026-11-22T13:00:00Z"
    assert "token" not in str(resource).lower().replace("subjects_total", "")
    failed = model.to_resource(model.fail(queued(), Failure.SUBJECT_SET_EMPTY, "none", T0), "x")
    assert failed["error"] == {"code": "subject_set_empty", "message": "none"}
    done = model.record_submission(
        model.start_submission(
            model.record_manifest(
                model.claim_for_build(queued(), "w", T0, LEASE),
                "w",
                T0,
                subjects=1,
                images=1,
                skipped=0,
                blob="b",
            ),
            "w",
            T0,
        ),
        "f940ecd58c7746b1bde89bd6ba5a5202",
        T0,
    )
    assert (
        model.to_resource(done, "https://sa/#/tasks/")["subject_assistant_url"]
        == "https://sa/#/tasks/f940ecd58c7746b1bde89bd6ba5a5202"
    )
