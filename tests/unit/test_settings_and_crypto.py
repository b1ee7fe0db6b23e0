import pytest

from shared.crypto import TokenCipher, TokenDecryptionError
from shared.settings import Settings, SettingsError

KEY = "k" * 40
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SUBJECT_ASSISTANT_ML_SERVICE_URL": "http://ml/v4/camera-trap/detection-batch/",
        "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": "zooniverse", "TOKEN_ENCRYPTION_KEY": KEY}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.panoptes_url == "https://www.zooniverse.org"
    assert s.ml_service_url == "http://ml/v4/camera-trap/detection-batch"
    assert s.external_url == "https://subject-assistant.zooniverse.org/#/tasks/"
    assert s.container_name == "subject-assistant-manifests"
    assert s.ml_poll_schedule == "0 */10 * * * *"
    assert s.allowed_origins == ("https://subject-assistant.zooniverse.org",)
    assert s.token_encryption_key_previous is None
    assert KEY not in repr(s)


@pytest.mark.parametrize("name,value", [
    ("SUBJECT_ASSISTANT_ML_SERVICE_URL", None), ("SUBJECT_ASSISTANT_ML_SERVICE_URL", "ftp://x"),
    ("SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID", None), ("TOKEN_ENCRYPTION_KEY", None),
    ("TOKEN_ENCRYPTION_KEY", "short"), ("ML_POLL_SCHEDULE", "*/5 * * * *"), ("ALLOWED_ORIGINS", "*"),
    ("SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME", "Bad_Name"), ("MANIFEST_SAS_HOURS", "200"),
    ("PANOPTES_PAGE_CONCURRENCY", "lots"), ("AzureWebJobsStorage", None),
])
def test_missing_or_malformed_settings_are_named(name, value):
    env = dict(BASE)
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert name in str(raised.value)


def test_identity_based_storage():
    env = {k: v for k, v in BASE.items() if k != "AzureWebJobsStorage"}
    env.update({"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
                "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
                "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001"})
    storage = Settings.from_env(env).storage
    assert storage.uses_identity and storage.client_id.endswith("1")
    assert storage.table_uri == "https://acct.table.core.windows.net"


def test_token_round_trip_and_rotation():
    old, new = TokenCipher("a" * 40), TokenCipher("b" * 40, previous_secret="a" * 40)
    ciphertext = old.encrypt("secret-token")
    assert "secret-token" not in ciphertext
    assert new.decrypt(ciphertext) == "secret-token"  # queued under the old key, still readable
    with pytest.raises(TokenDecryptionError):
        TokenCipher("b" * 40).decrypt(ciphertext)      # once the old key is retired
    with pytest.raises(TokenDecryptionError):
        new.decrypt(ciphertext[:-4] + "AAAA")
