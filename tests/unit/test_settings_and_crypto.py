import base64
import time

import pytest
from cryptography.fernet import Fernet

from exports.settings import ExportSettings as Settings
from shared.crypto import TokenCipher, TokenDecryptionError, TokenExpired
from shared.settings import SettingsError

KEY = Fernet.generate_key().decode()
BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "SUBJECT_ASSISTANT_ML_SERVICE_URL": "https://ml.example.org/v4/camera-trap/detection-batch/",
    "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": "zooniverse",
    "TOKEN_ENCRYPTION_KEY": KEY,
}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.panoptes_url == "https://www.zooniverse.org"
    assert s.ml_service_url == "https://ml.example.org/v4/camera-trap/detection-batch"
    assert s.external_url == "https://subject-assistant.zooniverse.org/#/tasks/"
    assert s.container_name == "subject-assistant-manifests"
    assert s.ml_poll_schedule == "0 */10 * * * *"
    assert s.allowed_origins == ("https://subject-assistant.zooniverse.org",)
    assert s.token_encryption_key_previous is None
    assert s.manifest_sas_hours == 4
    assert s.results_allowed_hosts == ("*.blob.core.windows.net",)
    assert KEY not in repr(s) and repr(base64.urlsafe_b64decode(KEY)) not in repr(s)


@pytest.mark.parametrize(
    "name,value",
    [
        ("SUBJECT_ASSISTANT_ML_SERVICE_URL", None),
        ("SUBJECT_ASSISTANT_ML_SERVICE_URL", "ftp://x"),
        ("SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID", None),
        ("TOKEN_ENCRYPTION_KEY", None),
        ("TOKEN_ENCRYPTION_KEY", "short"),
        ("ML_POLL_SCHEDULE", "*/5 * * * *"),
        ("ALLOWED_ORIGINS", "*"),
        ("SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME", "Bad_Name"),
        ("MANIFEST_SAS_HOURS", "200"),
        ("PANOPTES_PAGE_CONCURRENCY", "lots"),
        ("AzureWebJobsStorage", None),
        # A passphrase is not a key: it must be URL-safe base64 of at least 32 random bytes.
        ("TOKEN_ENCRYPTION_KEY", "local-dev-only passphrase that is long enough!!"),
        ("TOKEN_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"x" * 31).decode()),
        ("TOKEN_ENCRYPTION_KEY_PREVIOUS", "not base64 at all, but long enough to pass a length check"),
        # Tokens and SAS URLs never travel over plain http, except to loopback stand-ins.
        ("PANOPTES_URL", "http://www.zooniverse.org"),
        ("SUBJECT_ASSISTANT_ML_SERVICE_URL", "http://10.0.0.7/v4/camera-trap/detection-batch"),
        ("RESULTS_ALLOWED_HOSTS", "https://evil.example/"),
        ("ML_SERVICE_ALLOW_HTTP", "yes"),
        # The task id is appended: the prefix must pin the link's host (https, and '/' or '#').
        ("SUBJECT_ASSISTANT_EXTERNAL_URL", "http://subject-assistant.zooniverse.org/#/tasks/"),
        ("SUBJECT_ASSISTANT_EXTERNAL_URL", "https://subject-assistant.zooniverse.org/tasks"),
        ("SUBJECT_ASSISTANT_EXTERNAL_URL", "https://subject-assistant.zooniverse.org"),
        ("SUBJECT_ASSISTANT_EXTERNAL_URL", "https://subject-assistant.zooniverse.org\\.evil/#/"),
        ("SUBJECT_ASSISTANT_EXTERNAL_URL", "javascript:alert(1)//#"),
        # One URL parser everywhere (shared/urls.py): what two parsers read differently is refused.
        ("PANOPTES_URL", "https://www.zooniverse.org\\@127.0.0.1"),
        ("PANOPTES_URL", "https://user:pass@www.zooniverse.org"),
        ("SUBJECT_ASSISTANT_ML_SERVICE_URL", "https://127.1/v4/camera-trap/detection-batch"),
        ("SUBJECT_ASSISTANT_ML_SERVICE_URL", "https://ml.example.org/v4?x=1"),
        ("ALLOWED_ORIGINS", "https://subject-assistant.zooniverse.org/app"),
        ("UNKNOWN_TOKEN_LOOKUPS_PER_SECOND", "0"),
    ],
)
def test_missing_or_malformed_settings_are_named(name, value):
    env = dict(BASE)
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert name in str(raised.value)


@pytest.mark.parametrize(
    "value", ["https://subject-assistant.zooniverse.org/#/tasks/", "https://sa.example.org/tasks/"]
)
def test_the_subject_assistant_link_prefix_ends_in_a_slash_or_holds_a_fragment(value):
    assert Settings.from_env({**BASE, "SUBJECT_ASSISTANT_EXTERNAL_URL": value}).external_url == value


def test_plain_http_is_allowed_on_loopback_and_to_a_private_ml_host_only_by_opt_in():
    local = Settings.from_env(
        {
            **BASE,
            "PANOPTES_URL": "http://127.0.0.1:8080",
            "SUBJECT_ASSISTANT_ML_SERVICE_URL": "http://localhost:5000/v4",
        }
    )
    assert local.panoptes_url == "http://127.0.0.1:8080"
    private = {**BASE, "SUBJECT_ASSISTANT_ML_SERVICE_URL": "http://10.0.0.7/v4/camera-trap/detection-batch"}
    assert Settings.from_env({**private, "ML_SERVICE_ALLOW_HTTP": "true"}).ml_service_allow_http


def test_identity_based_storage():
    env = {k: v for k, v in BASE.items() if k != "AzureWebJobsStorage"}
    env.update(
        {
            "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
            "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
            "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
        }
    )
    storage = Settings.from_env(env).storage
    assert storage.uses_identity and storage.client_id.endswith("1")
    assert storage.table_uri == "https://acct.table.core.windows.net"


A, B = (base64.urlsafe_b64decode(Fernet.generate_key()) for _ in range(2))


def test_token_round_trip_and_rotation():
    old, new = TokenCipher(A), TokenCipher(B, previous_secret=A)
    ciphertext = old.encrypt("secret-token", bound_to="export-1")
    assert "secret-token" not in ciphertext
    assert new.decrypt(ciphertext, bound_to="export-1") == "secret-token"  # queued under the old key
    with pytest.raises(TokenDecryptionError):
        TokenCipher(B).decrypt(ciphertext, bound_to="export-1")  # once the old key is retired
    with pytest.raises(TokenDecryptionError):
        new.decrypt(ciphertext[:-4] + "AAAA", bound_to="export-1")


def test_a_token_is_bound_to_its_export_and_expires():
    cipher = TokenCipher(A, ttl_seconds=3600)
    sealed = cipher.encrypt("secret-token", bound_to="1-2-000")
    with pytest.raises(TokenDecryptionError) as wrong:
        cipher.decrypt(sealed, bound_to="1-3-000")  # copied into another export's message
    assert not isinstance(wrong.value, TokenExpired)
    assert cipher.decrypt(sealed, bound_to="1-2-000", now=time.time() + 3500) == "secret-token"
    with pytest.raises(TokenExpired):
        cipher.decrypt(sealed, bound_to="1-2-000", now=time.time() + 3700)


def test_a_key_shorter_than_32_bytes_is_refused():
    with pytest.raises(ValueError):
        TokenCipher(b"k" * 31)


def test_the_token_bucket_allows_its_burst_then_its_rate():
    from shared.rate_limit import TokenBucket

    now = [100.0]
    bucket = TokenBucket(rate=2, burst=4, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [0.0] * 4
    wait = bucket.take()
    assert wait == pytest.approx(0.5) and TokenBucket.retry_after(wait) == "1"
    now[0] += 0.5
    assert bucket.take() == 0.0 and bucket.take() > 0
    now[0] += 100  # refills to its burst, no more
    assert [bucket.take() for _ in range(5)].count(0.0) == 4
