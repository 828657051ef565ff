"""Where the server may send requests (localllm/store/egress.py): its hubs, and public
addresses they redirect to."""

from __future__ import annotations

import pytest

from localllm.store.egress import Egress, EgressRefused, is_public

ADDRESSES = {
    "cdn-lfs.hf.co": ["18.160.1.1"],
    "metadata.internal": ["169.254.169.254"],
    "intranet": ["10.1.2.3"],
    "both": ["18.160.1.1", "192.168.1.9"],
    "me": ["127.0.0.1", "::1"],
}


def hub(endpoint: str | None = None) -> Egress:
    return Egress.for_endpoint(endpoint, resolve=lambda host: ADDRESSES.get(host, []))


def test_public_addresses_are_told_from_the_rest() -> None:
    assert is_public("18.160.1.1") and is_public("2606:4700::1111")
    for address in ("127.0.0.1", "::1", "10.0.0.1", "172.16.0.1", "192.168.0.1",
                    "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "fd00::1",
                    "fe80::1", "::ffff:127.0.0.1", "not an address"):  # fmt: skip
        assert not is_public(address), address


def test_a_client_may_name_only_a_hub() -> None:
    egress = hub()
    egress.check_reference("https://huggingface.co/o/r/resolve/main/m.gguf")
    egress.check_reference("https://hf.co/o/r/resolve/main/m.gguf")
    for url in ("http://127.0.0.1:8080/m.gguf", "http://169.254.169.254/latest/meta-data",
                "https://example.com/m.gguf"):  # fmt: skip
        with pytest.raises(EgressRefused, match="fetches only from its hubs") as refused:
            egress.check_reference(url)
        assert refused.value.status == 403


def test_redirects_go_only_to_public_addresses() -> None:
    egress = hub()
    egress.check_request("https://huggingface.co/api/models/o/r")
    egress.check_request("https://cdn-lfs.hf.co/repos/x")  # the hub's storage
    for host in ("metadata.internal", "intranet", "both", "me", "unknown.example"):
        with pytest.raises(EgressRefused, match="not a public address"):
            egress.check_request(f"https://{host}/x")
    with pytest.raises(EgressRefused, match="only http and https"):
        egress.check_request("file:///etc/passwd")


def test_a_hub_on_a_private_address_stays_allowed_alone() -> None:
    egress = hub("http://127.0.0.1:8123")
    egress.check_request("http://127.0.0.1:8123/api/models/o/r")
    with pytest.raises(EgressRefused):
        egress.check_request("http://127.0.0.1:9999/other-service")
