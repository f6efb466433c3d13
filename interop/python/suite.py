"""boto3, the AWS CLI (v1, from PyPI) and PyJWT against a started cogref emulator.

Usage: python python/suite.py http://127.0.0.1:PORT
Prints one line per check: check<TAB>client<TAB>ok|FAIL<TAB>name<TAB>detail.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.config
import jwt
from botocore.exceptions import ClientError

ENDPOINT = sys.argv[1]
REGION = "eu-west-1"
PASSWORD = "Interop-Passw0rd!"
FAILURES = 0

# The set-up operations are signed: any credentials do, the emulator does not check them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "not-checked")
os.environ["AWS_DEFAULT_REGION"] = REGION
for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(var, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def report(client, check, ok, detail=""):
    global FAILURES
    if not ok:
        FAILURES += 1
    def clean(x):
        return " ".join(str(x).split())[:300]

    print("\t".join(["check", client, "ok" if ok else "FAIL", clean(check), clean(detail)]), flush=True)


def check(client, name):
    def run(body):
        try:
            detail = body()
            report(client, name, True, detail or "")
        except Exception as e:  # a failed check, whatever failed
            report(client, name, False, f"{type(e).__name__}: {e}")
        return body

    return run


def expect_error(call, code, part=None):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        message = e.response["Error"].get("Message", "")
        assert got == code, f"expected {code}, got {got}: {message}"
        assert part is None or part in message, f"message {message!r} lacks {part!r}"
        return f"{got}: {message}"
    raise AssertionError(f"expected {code}, but the call succeeded")


def admin(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{ENDPOINT}/_emulator/{path}", data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def served():
    return admin("counters")["requests_served"]


def client(mode="standard", attempts=3):
    return boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        config=botocore.config.Config(retries={"mode": mode, "max_attempts": attempts}),
    )


idp = client()


def set_up(name, **settings):
    pool = idp.create_user_pool(PoolName=name)["UserPool"]
    app = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName=f"{name}-client",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        **settings,
    )["UserPoolClient"]
    idp.admin_create_user(UserPoolId=pool["Id"], Username="pyuser", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username="pyuser", Password=PASSWORD, Permanent=True)
    return pool, app


def secret_hash(app, username="pyuser"):
    mac = hmac.new(app["ClientSecret"].encode(), (username + app["ClientId"]).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def sign_in(app):
    params = {"USERNAME": "pyuser", "PASSWORD": PASSWORD}
    if "ClientSecret" in app:
        params["SECRET_HASH"] = secret_hash(app)
    return idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=app["ClientId"], AuthParameters=params)[
        "AuthenticationResult"
    ]


def refresh(app, token, c=idp, **extra):
    return c.get_tokens_from_refresh_token(ClientId=app["ClientId"], RefreshToken=token, **extra)


# ---- boto3 -----------------------------------------------------------------------------------
B = "boto3"
ctx = {}


@check(B, "set-up through the standard API")
def _():
    ctx["plain"] = set_up("py-plain")
    ctx["rot0"] = set_up("py-rot0", RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": 0})
    ctx["rot5"] = set_up("py-rot5", RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": 5})
    ctx["secret"] = set_up(
        "py-secret", GenerateSecret=True, RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": 0}
    )
    pool, app = ctx["rot5"]
    d = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=app["ClientId"])["UserPoolClient"]
    assert d["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 5}, d
    assert len(ctx["secret"][1]["ClientSecret"]) >= 24


@check(B, "validation in the service's wording")
def _():
    pool, _app = ctx["plain"]
    return expect_error(
        lambda: idp.create_user_pool_client(UserPoolId=pool["Id"], ClientName="bad name!"),
        "InvalidParameterException",
        "Member must satisfy regular expression pattern: [\\w\\s+=,.@-]+",
    )


@check(B, "sign-in: USER_PASSWORD_AUTH and ADMIN_USER_PASSWORD_AUTH")
def _():
    pool, app = ctx["plain"]
    a = sign_in(app)
    b = idp.admin_initiate_auth(
        UserPoolId=pool["Id"],
        ClientId=app["ClientId"],
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "pyuser", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    assert a["RefreshToken"] != b["RefreshToken"], "each sign-in starts a lineage"
    claims = jwt.decode(a["AccessToken"], options={"verify_signature": False})
    assert claims["origin_jti"] != jwt.decode(b["AccessToken"], options={"verify_signature": False})["origin_jti"]


@check(B, "API-created clients default to LEGACY: an unknown user is UserNotFoundException")
def _():
    pool, app = ctx["plain"]
    d = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=app["ClientId"])["UserPoolClient"]
    assert d["PreventUserExistenceErrors"] == "LEGACY", d
    return expect_error(
        lambda: idp.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=app["ClientId"],
            AuthParameters={"USERNAME": "nobody", "PASSWORD": PASSWORD},
        ),
        "UserNotFoundException",
    )


@check(B, "refresh without rotation")
def _():
    _pool, app = ctx["plain"]
    t = sign_in(app)["RefreshToken"]
    out = refresh(app, t)
    assert "RefreshToken" not in out["AuthenticationResult"] and "ChallengeParameters" not in out
    refresh(app, t)


@check(B, "refresh with rotation (grace 0): reuse refused")
def _():
    _pool, app = ctx["rot0"]
    t = sign_in(app)["RefreshToken"]
    assert refresh(app, t)["AuthenticationResult"]["RefreshToken"] != t
    return expect_error(lambda: refresh(app, t), "RefreshTokenReuseException")


@check(B, "reuse inside and after the grace period")
def _():
    _pool, app = ctx["rot5"]
    t = sign_in(app)["RefreshToken"]
    refresh(app, t)
    refresh(app, t)
    admin("clock", {"advance_secs": 6})
    return expect_error(lambda: refresh(app, t), "RefreshTokenReuseException")


@check(B, "wrong and missing client secret")
def _():
    _pool, app = ctx["secret"]
    t = sign_in(app)["RefreshToken"]
    expect_error(lambda: refresh(app, t, ClientSecret="w" * 30), "NotAuthorizedException", "SecretHash")
    expect_error(lambda: refresh(app, t), "NotAuthorizedException", "secret")
    bad = idp.initiate_auth
    expect_error(
        lambda: bad(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=app["ClientId"],
            AuthParameters={"USERNAME": "pyuser", "PASSWORD": PASSWORD, "SECRET_HASH": "d3Jvbmc="},
        ),
        "NotAuthorizedException",
        "secret hash",
    )
    out = refresh(app, t, ClientSecret=app["ClientSecret"])
    return "the right secret still refreshes" if out["AuthenticationResult"]["RefreshToken"] else ""


@check(B, "REFRESH_TOKEN_AUTH: refused on a rotating client, works without rotation")
def _():
    _pool, rot = ctx["rot0"]
    t = sign_in(rot)["RefreshToken"]
    expect_error(
        lambda: idp.initiate_auth(AuthFlow="REFRESH_TOKEN_AUTH", ClientId=rot["ClientId"], AuthParameters={"REFRESH_TOKEN": t}),
        "InvalidParameterException",
        "GetTokensFromRefreshToken",
    )
    _pool, plain = ctx["plain"]
    p = sign_in(plain)["RefreshToken"]
    out = idp.initiate_auth(AuthFlow="REFRESH_TOKEN_AUTH", ClientId=plain["ClientId"], AuthParameters={"REFRESH_TOKEN": p})
    assert "RefreshToken" not in out["AuthenticationResult"]


@check(B, "RevokeToken and GlobalSignOut")
def _():
    _pool, app = ctx["rot0"]
    one, two = sign_in(app), sign_in(app)
    idp.revoke_token(Token=one["RefreshToken"], ClientId=app["ClientId"])
    expect_error(lambda: refresh(app, one["RefreshToken"]), "NotAuthorizedException", "revoked")
    assert idp.get_user(AccessToken=two["AccessToken"])["Username"] == "pyuser"
    idp.global_sign_out(AccessToken=two["AccessToken"])
    expect_error(lambda: idp.get_user(AccessToken=two["AccessToken"]), "NotAuthorizedException", "revoked")
    return expect_error(lambda: refresh(app, two["RefreshToken"]), "NotAuthorizedException", "revoked")


@check(B, "throttling (HTTP 400): standard mode retries, legacy mode does not")
def _():
    _pool, app = ctx["plain"]
    t = sign_in(app)["RefreshToken"]
    before = served()
    admin("faults", {"kind": "throttle", "count": 2})
    out = refresh(app, t)
    assert out["ResponseMetadata"]["RetryAttempts"] == 2 and served() - before == 3, out["ResponseMetadata"]
    # Legacy mode retries throttling only by code lists that lack TooManyRequestsException, or
    # by HTTP 429; the service sends 400, so it gives up at once (boto/botocore#1756).
    legacy = client("legacy", 5)
    before = served()
    admin("faults", {"kind": "throttle", "count": 1})
    expect_error(lambda: refresh(app, t, c=legacy), "TooManyRequestsException")
    assert served() - before == 1, "legacy mode sent one request"
    return "standard: 2 retries; legacy: none"


@check(B, "5xx faults retried")
def _():
    _pool, app = ctx["plain"]
    t = sign_in(app)["RefreshToken"]
    admin("faults", {"kind": "server_error", "count": 1, "status": 500})
    admin("faults", {"kind": "server_error", "count": 1, "status": 503})
    out = refresh(app, t)
    assert out["ResponseMetadata"]["RetryAttempts"] == 2, out["ResponseMetadata"]


@check(B, "lost response after rotation: retry inside the grace period succeeds")
def _():
    _pool, app = ctx["rot5"]
    t = sign_in(app)["RefreshToken"]
    before = served()
    admin("faults", {"kind": "drop_after_rotation", "count": 1})
    out = refresh(app, t)
    assert served() - before == 2 and out["ResponseMetadata"]["RetryAttempts"] == 1, out["ResponseMetadata"]


# ---- PyJWT: verification with the pool's JWKS -------------------------------------------------
J = "pyjwt"


@check(J, "access and ID tokens verify with their own keys of the JWKS and OpenID configuration")
def _():
    pool, app = ctx["plain"]
    # The clock was moved above: sign with the wall clock, or PyJWT finds iat in the future.
    admin("signing", {"wall_clock": True})
    try:
        tokens = sign_in(app)
    finally:
        admin("signing", {"wall_clock": False})
    with urllib.request.urlopen(f"{ENDPOINT}/{pool['Id']}/.well-known/openid-configuration") as r:
        oidc = json.load(r)
    # Each token by its own key: Cognito signs access and ID tokens with different keys.
    keys = jwt.PyJWKClient(oidc["jwks_uri"])
    id_key = keys.get_signing_key_from_jwt(tokens["IdToken"])
    access_key = keys.get_signing_key_from_jwt(tokens["AccessToken"])
    assert id_key.key_id != access_key.key_id, "one key signs both token kinds"
    idt = jwt.decode(tokens["IdToken"], id_key.key, algorithms=["RS256"], audience=app["ClientId"], issuer=oidc["issuer"])
    acc = jwt.decode(tokens["AccessToken"], access_key.key, algorithms=["RS256"], issuer=oidc["issuer"])
    assert idt["token_use"] == "id" and acc["token_use"] == "access" and acc["client_id"] == app["ClientId"]
    try:
        jwt.decode(tokens["AccessToken"], id_key.key, algorithms=["RS256"], issuer=oidc["issuer"])
        raise AssertionError("the access token verified with the ID token's key")
    except jwt.InvalidSignatureError:
        pass
    return "two keys, each token verifies with its own"


@check(J, "after a clock move, wall-clock signing keeps iat acceptable")
def _():
    pool, app = ctx["plain"]
    admin("clock", {"advance_secs": 600})
    ahead = sign_in(app)["AccessToken"]
    try:
        jwt.decode(ahead, options={"verify_signature": False, "verify_iat": True})
        raise AssertionError("a token signed 10 minutes ahead passed")
    except jwt.ImmatureSignatureError:
        pass
    admin("signing", {"wall_clock": True})
    try:
        jwt.decode(sign_in(app)["AccessToken"], options={"verify_signature": False, "verify_iat": True, "verify_exp": True})
    finally:
        admin("signing", {"wall_clock": False})
    return "signed ahead: not yet valid; wall clock: valid"


# ---- OAuth2 token endpoint (Python's standard library as the HTTP client) ---------------------
O = "oauth2-http"


@check(O, "refresh grant with client_secret_basic rotates like the API")
def _():
    _pool, app = ctx["secret"]
    t = sign_in(app)["RefreshToken"]
    auth = base64.b64encode(f"{app['ClientId']}:{app['ClientSecret']}".encode()).decode()
    body = f"grant_type=refresh_token&refresh_token={t}".encode()

    def post(b):
        req = urllib.request.Request(
            f"{ENDPOINT}/oauth2/token",
            data=b,
            headers={"content-type": "application/x-www-form-urlencoded", "authorization": f"Basic {auth}"},
        )
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    status, out = post(body)
    assert status == 200 and out["refresh_token"] != t and out["token_type"] == "Bearer", (status, out)
    status, out = post(body)
    assert status == 400 and out == {"error": "invalid_grant"}, (status, out)
    return "reuse: invalid_grant"


# ---- AWS CLI v1 ---------------------------------------------------------------------------------
A = "aws-cli"


def aws(*args, env=None):
    cmd = [os.path.join(os.path.dirname(sys.executable), "aws"), "cognito-idp", *args]
    cmd += ["--endpoint-url", ENDPOINT, "--region", REGION, "--output", "json"]
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=60)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def aws_ok(*args, **kw):
    code, out, err = aws(*args, **kw)
    assert code == 0, f"exit {code}: {err.strip()}"
    return out


def aws_err(code_name, *args, **kw):
    code, _out, err = aws(*args, **kw)
    assert code != 0 and code_name in err, f"exit {code}, expected {code_name}: {err.strip()}"
    return err.strip().splitlines()[-1]


@check(A, "set-up, sign-in and refresh with rotation; reuse refused")
def _():
    pool = aws_ok("create-user-pool", "--pool-name", "cli-pool")["UserPool"]
    app = aws_ok(
        "create-user-pool-client",
        "--user-pool-id", pool["Id"],
        "--client-name", "cli-client",
        "--explicit-auth-flows", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH",
        "--refresh-token-rotation", "Feature=ENABLED,RetryGracePeriodSeconds=0",
    )["UserPoolClient"]
    aws_ok("admin-create-user", "--user-pool-id", pool["Id"], "--username", "cliuser", "--message-action", "SUPPRESS")
    aws_ok("admin-set-user-password", "--user-pool-id", pool["Id"], "--username", "cliuser", "--password", PASSWORD, "--permanent")
    signed = aws_ok(
        "initiate-auth", "--client-id", app["ClientId"], "--auth-flow", "USER_PASSWORD_AUTH",
        "--auth-parameters", f"USERNAME=cliuser,PASSWORD={PASSWORD}",
    )["AuthenticationResult"]
    ctx["cli"] = (pool, app, signed)
    out = aws_ok("get-tokens-from-refresh-token", "--client-id", app["ClientId"], "--refresh-token", signed["RefreshToken"])
    ctx["cli_rotated"] = out["AuthenticationResult"]["RefreshToken"]
    assert ctx["cli_rotated"] != signed["RefreshToken"]
    return aws_err(
        "RefreshTokenReuseException",
        "get-tokens-from-refresh-token", "--client-id", app["ClientId"], "--refresh-token", signed["RefreshToken"],
    )


@check(A, "throttling: legacy retry mode gives up on HTTP 400, standard mode recovers")
def _():
    _pool, app, _signed = ctx["cli"]
    args = ("get-tokens-from-refresh-token", "--client-id", app["ClientId"], "--refresh-token", ctx["cli_rotated"])
    before = served()
    admin("faults", {"kind": "throttle", "count": 1})
    aws_err("TooManyRequestsException", *args, env={"AWS_RETRY_MODE": "legacy"})
    assert served() - before == 1
    before = served()
    admin("faults", {"kind": "throttle", "count": 1})
    out = aws_ok(*args, env={"AWS_RETRY_MODE": "standard"})
    assert served() - before == 2
    ctx["cli_rotated"] = out["AuthenticationResult"]["RefreshToken"]
    return "legacy: 1 request; standard: 2"


@check(A, "revoke-token, then the lineage is refused")
def _():
    _pool, app, _signed = ctx["cli"]
    aws_ok("revoke-token", "--client-id", app["ClientId"], "--token", ctx["cli_rotated"])
    return aws_err(
        "NotAuthorizedException",
        "get-tokens-from-refresh-token", "--client-id", app["ClientId"], "--refresh-token", ctx["cli_rotated"],
    )


sys.exit(0 if FAILURES == 0 else 1)
