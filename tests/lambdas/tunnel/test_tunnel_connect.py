from __future__ import annotations

import boto3
import pytest

from lambdas.tunnel import connect
from lambdas.tunnel.store import TokenStore
from lambdas.tunnel.tokens import parse_token
from tests.lambdas.tunnel.support import CONNECTIONS, TOKENS, connect_event, new_token

pytestmark = pytest.mark.usefixtures("tunnel_env")


def _token_id(token: str) -> str:
    parsed = parse_token(token)
    assert parsed
    return parsed[0]


def _item(connection_id: str) -> dict:
    return (
        boto3.client("dynamodb")
        .get_item(TableName=CONNECTIONS, Key={"connectionId": {"S": connection_id}})
        .get("Item", {})
    )


def test_valid_token_registers_a_random_subdomain_not_yet_routable(context) -> None:
    result = connect.handler(connect_event("c1", new_token()), context)
    assert result["statusCode"] == 200
    item = _item("c1")
    subdomain = item["claimedSubdomain"]["S"]
    assert len(subdomain) == 12 and subdomain.isalnum() and subdomain.islower()
    assert item["publicUrl"]["S"] == f"https://p9r8s7t6u5.execute-api.eu-west-1.amazonaws.com/t/{subdomain}"
    # Routable only after the agent's Ready: posting during $connect fails.
    assert "publicSubdomain" not in item
    assert int(item["ttl"]["N"]) - int(item["createdAt"]["N"]) == 2 * 60 * 60


def test_token_in_query_string_is_accepted(context) -> None:
    evt = connect_event("c1", None)
    evt["queryStringParameters"] = {"token": new_token()}
    assert connect.handler(evt, context)["statusCode"] == 200


@pytest.mark.parametrize("token", [None, "", "garbage", "abcdefghij.wrongsecretwrongsecretwrong"])
def test_missing_or_unknown_token_is_refused(context, token) -> None:
    new_token()
    result = connect.handler(connect_event("c1", token), context)
    assert result["statusCode"] == 401
    assert "error" in result["body"]
    assert _item("c1") == {}


def test_right_id_wrong_secret_is_refused_and_token_never_logged(context, caplog) -> None:
    token = new_token()
    parsed = parse_token(token)
    assert parsed
    token_id, secret = parsed
    forged = f"{token_id}.{'x' * len(secret)}"
    assert connect.handler(connect_event("c1", forged), context)["statusCode"] == 401
    assert connect.handler(connect_event("c2", token), context)["statusCode"] == 200
    logs = " ".join(str(vars(r)) for r in caplog.records)
    assert secret not in logs and forged not in logs
    assert token_id in logs  # the public id is what operators need to see


def test_revoked_token_is_refused(context) -> None:
    token = new_token()
    TokenStore(TOKENS).revoke(_token_id(token))
    assert connect.handler(connect_event("c1", token), context)["statusCode"] == 401


def test_requested_subdomain_belongs_to_the_first_token(context) -> None:
    first, second = new_token("a"), new_token("b")
    assert connect.handler(connect_event("c1", first, "demo"), context)["statusCode"] == 200
    assert _item("c1")["claimedSubdomain"]["S"] == "demo"
    taken = connect.handler(connect_event("c2", second, "demo"), context)
    assert taken["statusCode"] == 409 and _item("c2") == {}
    # The owner reconnecting gets the same name again.
    assert connect.handler(connect_event("c3", first, "Demo"), context)["statusCode"] == 200
    assert _item("c3")["claimedSubdomain"]["S"] == "demo"


def test_revoking_a_token_releases_its_subdomains(context) -> None:
    first, second = new_token("a"), new_token("b")
    assert connect.handler(connect_event("c1", first, "demo"), context)["statusCode"] == 200
    TokenStore(TOKENS).revoke(_token_id(first))
    assert connect.handler(connect_event("c2", second, "demo"), context)["statusCode"] == 200


@pytest.mark.parametrize("name", ["a", "-abc", "abc-", "a.b", "x" * 64, "ünï"])
def test_invalid_subdomain_is_refused(context, name) -> None:
    assert connect.handler(connect_event("c1", new_token(), name), context)["statusCode"] == 400


def test_custom_domain_gives_host_style_url(context, monkeypatch) -> None:
    monkeypatch.setenv("DOMAIN_NAME", "tunnel.example.com")
    assert connect.handler(connect_event("c1", new_token(), "demo"), context)["statusCode"] == 200
    assert _item("c1")["publicUrl"]["S"] == "https://demo.tunnel.example.com"


def _ready(context, connection_id: str, token: str, subdomain: str | None = None) -> None:
    from lambdas.tunnel import protocol as p
    from lambdas.tunnel import response
    from tests.lambdas.tunnel.support import send

    assert connect.handler(connect_event(connection_id, token, subdomain), context)["statusCode"] == 200
    send(response.handler, connection_id, p.encode(p.Ready()), context)


def test_one_agent_per_name_unless_it_asks_to_replace(context, gateway) -> None:
    token = new_token()
    _ready(context, "c1", token, "demo")
    second = connect.handler(connect_event("c2", token, "demo"), context)
    assert second["statusCode"] == 423 and "--replace" in second["body"] and _item("c2") == {}
    assert gateway.deleted == []
    # The agent's own rotation names the connection it replaces: both may live while it drains.
    assert connect.handler(connect_event("c3", token, "demo", x_tunnel_rotate="c1"), context)["statusCode"] == 200
    assert gateway.deleted == []
    # --replace: the old agent is told why, then closed, and its row forgotten.
    taken = connect.handler(connect_event("c4", token, "demo", x_tunnel_replace="true"), context)
    assert taken["statusCode"] == 200
    assert gateway.deleted == ["c1"] and _item("c1") == {}
    told = [m for m in gateway.messages("c1") if m["type"] == "Error"]
    assert told and told[-1]["code"] == "replaced"


def test_a_gone_agent_without_disconnect_does_not_block_its_name(context, gateway) -> None:
    token = new_token()
    _ready(context, "c1", token, "demo")
    gateway.gone.add("c1")  # vanished; $disconnect never ran
    assert connect.handler(connect_event("c2", token, "demo"), context)["statusCode"] == 200
    assert _item("c1") == {}


def test_random_name_is_reused_and_names_per_token_are_bounded(context) -> None:
    from lambdas.tunnel.store import MAX_NAMES

    token = new_token()
    names = set()
    for i in range(3):
        assert connect.handler(connect_event(f"r{i}", token), context)["statusCode"] == 200
        names.add(_item(f"r{i}")["claimedSubdomain"]["S"])
    assert len(names) == 1  # one random name per token, however often it connects
    for i in range(MAX_NAMES - 1):
        assert connect.handler(connect_event(f"n{i}", token, f"name-{i}"), context)["statusCode"] == 200
    refused = connect.handler(connect_event("over", token, "one-too-many"), context)
    assert refused["statusCode"] == 422 and str(MAX_NAMES) in refused["body"]
    # Names it already holds still work.
    assert connect.handler(connect_event("again", token, "name-0"), context)["statusCode"] == 200
    assert len(TokenStore(TOKENS).get(_token_id(token))["subdomains"]) == MAX_NAMES


def test_expired_token_is_refused_and_a_live_one_records_its_expiry(context) -> None:
    import time

    from lambdas.tunnel.tokens import new_token as make_token

    store = TokenStore(TOKENS)
    token_id, old, secret_hash = make_token()
    store.put(token_id, secret_hash, "old", expires_at=int(time.time()) - 1)
    result = connect.handler(connect_event("c1", old), context)
    assert result["statusCode"] == 401 and "expired" in result["body"]
    token_id, live, secret_hash = make_token()
    store.put(token_id, secret_hash, "live", expires_at=int(time.time()) + 3600)
    assert connect.handler(connect_event("c2", live), context)["statusCode"] == 200
    assert int(_item("c2")["expiresAt"]["N"]) > time.time()
