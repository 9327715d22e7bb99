"""Forbidden request material: what the server must refuse wherever it is sent, and never keep.

Written as an adversary would, from the public formats of credentials, signing material and
payment instructions, without looking at the detector. Every value is fake (see ``formats``).
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable

from tests.safety_corpus.case import Case, Shape, Text, shapes, texts
from tests.safety_corpus.formats import (
    ALNUM,
    BASE64,
    BECH32,
    LOWER,
    LOWER_ALNUM,
    UPPER,
    UPPER_ALNUM,
    URLSAFE,
    Fakes,
    b64url_json,
    base58,
    fullwidth,
    pem,
    wrap,
)

MAX_UINT256 = str(2**256 - 1)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _uuid(f: Fakes) -> str:
    return str(uuid.UUID(bytes=f.raw(16), version=4))


# Keys a few kinds reuse: one builder each, so a case names the format it disguises.
def openai_project(f: Fakes) -> str:
    return "sk-proj-" + f.urlsafe(58) + "T3BlbkFJ" + f.urlsafe(58)


def openai_legacy(f: Fakes) -> str:
    return "sk-" + f.alnum(20) + "T3BlbkFJ" + f.alnum(20)


def anthropic(f: Fakes) -> str:
    return "sk-ant-api03-" + f.urlsafe(93) + "AA"


def github_pat(f: Fakes) -> str:
    return "ghp_" + f.alnum(36)


def stripe_live(f: Fakes) -> str:
    return "sk_live_51" + f.alnum(97)


def aws_key_id(f: Fakes) -> str:
    return "AKIA" + f.chars(UPPER + "234567", 16)


def aws_secret(f: Fakes) -> str:
    return f.alnum(18) + "/" + f.alnum(10) + "+" + f.alnum(10)


def slack_bot(f: Fakes) -> str:
    return f"xoxb-{f.digits(12)}-{f.digits(13)}-{f.alnum(24)}"


def token40(f: Fakes) -> str:
    return f.alnum(40)


def hs256_jwt(f: Fakes) -> str:
    return f.jwt(
        {"alg": "HS256", "typ": "JWT"},
        {"sub": "agent-research-1", "iat": 1760000000, "exp": 1760003600, "scope": "admin"},
        32,
    )


def ed25519_pem(f: Fakes) -> str:
    return pem("PRIVATE KEY", f.ed25519_body())


# -- raw provider credentials ------------------------------------------------------------------


def _provider_keys() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("openai_legacy", openai_legacy),
        ("openai_legacy_48", lambda f: "sk-" + f.alnum(48)),
        ("openai_project", openai_project),
        (
            "openai_service_account",
            lambda f: "sk-svcacct-" + f.urlsafe(58) + "T3BlbkFJ" + f.urlsafe(58),
        ),
        ("openai_admin", lambda f: "sk-admin-" + f.urlsafe(58) + "T3BlbkFJ" + f.urlsafe(58)),
        ("anthropic_api", anthropic),
        ("anthropic_admin", lambda f: "sk-ant-admin01-" + f.urlsafe(93) + "AA"),
        ("groq", lambda f: "gsk_" + f.alnum(52)),
        ("xai", lambda f: "xai-" + f.alnum(80)),
        ("perplexity", lambda f: "pplx-" + f.alnum(48)),
        ("openrouter", lambda f: "sk-or-v1-" + f.hex(64)),
        ("replicate", lambda f: "r8_" + f.alnum(37)),
        ("huggingface", lambda f: "hf_" + f.chars(LOWER + UPPER, 34)),
        ("huggingface_org", lambda f: "api_org_" + f.chars(LOWER + UPPER, 34)),
        ("deepseek", lambda f: "sk-" + f.hex(32)),
        ("fireworks", lambda f: "fw_" + f.alnum(24)),
        ("langsmith", lambda f: f"lsv2_pt_{f.hex(32)}_{f.hex(10)}"),
        ("google_api_key", lambda f: "AIzaSy" + f.chars(URLSAFE, 33)),
        ("google_oauth_access_token", lambda f: "ya29.a0" + f.urlsafe(150)),
        ("google_oauth_refresh_token", lambda f: "1//0g" + f.urlsafe(98)),
        ("aws_access_key_id", aws_key_id),
        ("aws_temporary_key_id", lambda f: "ASIA" + f.chars(UPPER + "234567", 16)),
        ("aws_secret_access_key_bare", aws_secret),
        ("aws_session_token", lambda f: "IQoJb3JpZ2luX2VjE" + f.chars(BASE64, 340) + "=="),
        (
            "azure_storage_connection_string",
            lambda f: (
                "DefaultEndpointsProtocol=https;AccountName=flowmem"
                + f.chars(LOWER_ALNUM, 8)
                + ";AccountKey="
                + f.b64(64)
                + ";EndpointSuffix=core.windows.net"
            ),
        ),
        (
            "azure_sas_url",
            lambda f: (
                "https://flowmem.blob.core.windows.net/models?sv=2022-11-02&ss=b&srt=co"
                "&sp=rwdlac&se=2026-12-31T00:00:00Z&spr=https&sig="
                + urllib.parse.quote(f.b64(32), safe="")
            ),
        ),
        ("azure_ad_client_secret", lambda f: f.alnum(3) + "8Q~" + f.chars(ALNUM + "_~.-", 34)),
        (
            "gcp_service_account_json",
            lambda f: json.dumps(
                {
                    "type": "service_account",
                    "project_id": "flow-memory-market",
                    "private_key_id": f.hex(40),
                    "private_key": ed25519_pem(f) + "\n",
                    "client_email": "market@flow-memory-market.iam.gserviceaccount.com",
                }
            ),
        ),
        ("github_pat", github_pat),
        ("github_oauth", lambda f: "gho_" + f.alnum(36)),
        ("github_user_to_server", lambda f: "ghu_" + f.alnum(36)),
        ("github_installation", lambda f: "ghs_" + f.alnum(36)),
        ("github_refresh", lambda f: "ghr_" + f.alnum(36)),
        ("github_fine_grained", lambda f: f"github_pat_{f.alnum(22)}_{f.alnum(59)}"),
        ("gitlab_pat", lambda f: "glpat-" + f.urlsafe(20)),
        ("gitlab_runner", lambda f: "glrt-" + f.urlsafe(20)),
        ("bitbucket_app_password", lambda f: "ATBB" + f.alnum(32)),
        ("slack_bot", slack_bot),
        (
            "slack_user",
            lambda f: f"xoxp-{f.digits(12)}-{f.digits(12)}-{f.digits(13)}-{f.hex(32)}",
        ),
        ("slack_app", lambda f: f"xapp-1-A{f.chars(UPPER_ALNUM, 10)}-{f.digits(13)}-{f.hex(64)}"),
        (
            "discord_bot",
            lambda f: f.chars("MN", 1) + f.alnum(25) + "." + f.urlsafe(6) + "." + f.urlsafe(38),
        ),
        ("telegram_bot", lambda f: f"{f.digits(10)}:AA{f.urlsafe(33)}"),
        ("twilio_api_key", lambda f: "SK" + f.hex(32)),
        ("sendgrid", lambda f: f"SG.{f.urlsafe(22)}.{f.urlsafe(43)}"),
        ("mailgun", lambda f: "key-" + f.hex(32)),
        ("mailchimp", lambda f: f"{f.hex(32)}-us{f.digits(2)}"),
        ("brevo", lambda f: f"xkeysib-{f.hex(64)}-{f.alnum(16)}"),
        ("stripe_secret_live", stripe_live),
        ("stripe_restricted_live", lambda f: "rk_live_51" + f.alnum(97)),
        ("stripe_secret_test", lambda f: "sk_test_51" + f.alnum(97)),
        ("stripe_webhook_secret", lambda f: "whsec_" + f.alnum(32)),
        (
            "braintree_access_token",
            lambda f: f"access_token$production${f.chars(LOWER_ALNUM, 16)}${f.hex(32)}",
        ),
        ("square_access_token", lambda f: "EAAA" + f.urlsafe(60)),
        ("square_oauth_token", lambda f: "sq0atp-" + f.urlsafe(22)),
        ("square_oauth_secret", lambda f: "sq0csp-" + f.urlsafe(43)),
        ("razorpay", lambda f: "rzp_live_" + f.alnum(14)),
        ("flutterwave", lambda f: f"FLWSECK-{f.hex(32)}-X"),
        ("paystack", lambda f: "sk_live_" + f.hex(40)),
        ("shopify_access", lambda f: "shpat_" + f.hex(32)),
        ("shopify_shared_secret", lambda f: "shpss_" + f.hex(32)),
        ("npm", lambda f: "npm_" + f.alnum(36)),
        ("pypi", lambda f: "pypi-AgEIcHlwaS5vcmcCJ" + f.urlsafe(150)),
        ("rubygems", lambda f: "rubygems_" + f.hex(48)),
        ("nuget", lambda f: "oy2" + f.chars(LOWER_ALNUM, 43)),
        ("docker_hub", lambda f: "dckr_pat_" + f.urlsafe(27)),
        ("clojars", lambda f: "CLOJARS_" + f.chars(LOWER_ALNUM, 60)),
        ("artifactory", lambda f: "AKCp" + f.alnum(69)),
        ("crates_io", lambda f: "cio" + f.alnum(32)),
        ("digitalocean", lambda f: "dop_v1_" + f.hex(64)),
        ("heroku", lambda f: "HRKU-AA" + f.urlsafe(58)),
        ("vault_service_token", lambda f: "hvs.CAESI" + f.urlsafe(90)),
        ("terraform_cloud", lambda f: f.chars(LOWER_ALNUM, 14) + ".atlasv1." + f.urlsafe(67)),
        ("doppler", lambda f: "dp.pt." + f.alnum(43)),
        ("databricks", lambda f: "dapi" + f.hex(32)),
        ("grafana_service_account", lambda f: f"glsa_{f.alnum(32)}_{f.hex(8)}"),
        ("new_relic", lambda f: "NRAK-" + f.chars(UPPER_ALNUM, 27)),
        ("sentry_user", lambda f: "sntryu_" + f.hex(64)),
        ("linear", lambda f: "lin_api_" + f.alnum(40)),
        ("notion", lambda f: "ntn_" + f.digits(11) + f.alnum(35)),
        ("airtable", lambda f: f"pat{f.alnum(14)}.{f.hex(64)}"),
        ("postman", lambda f: f"PMAK-{f.hex(24)}-{f.hex(34)}"),
        ("dynatrace", lambda f: f"dt0c01.{f.chars(UPPER_ALNUM, 24)}.{f.chars(UPPER_ALNUM, 64)}"),
        ("atlassian", lambda f: "ATATT3xFfGF0" + f.urlsafe(180)),
        ("pulumi", lambda f: "pul-" + f.hex(40)),
        ("planetscale", lambda f: "pscale_tkn_" + f.urlsafe(43)),
        ("fly", lambda f: "fo1_" + f.urlsafe(43)),
        ("openshift", lambda f: "sha256~" + f.urlsafe(43)),
        (
            "mapbox_secret",
            lambda f: "sk.eyJ1IjoiZmxvd21lbSIsImEiOiJ" + f.alnum(20) + "." + f.urlsafe(22),
        ),
        ("cloudflare_origin_ca", lambda f: f"v1.0-{f.hex(24)}-{f.hex(146)}"),
        ("easypost", lambda f: "EZAK" + f.alnum(54)),
        ("okta", lambda f: "00" + f.urlsafe(40)),
        ("facebook_page", lambda f: "EAAC" + f.alnum(160)),
        ("twitter_bearer", lambda f: "A" * 22 + f.alnum(60) + "%3D" + f.alnum(50)),
        ("alibaba", lambda f: "LTAI" + f.alnum(20)),
        ("tencent", lambda f: "AKID" + f.alnum(32)),
        ("yandex", lambda f: "AQVN" + f.urlsafe(35)),
        ("firebase_fcm", lambda f: f"AAAA{f.urlsafe(7)}:APA91b{f.urlsafe(134)}"),
    ]
    return texts("provider_key", specs)


def _generic_tokens() -> list[Case]:
    values: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("alnum_32", lambda f: f.alnum(32)),
        ("alnum_40", token40),
        ("alnum_48", lambda f: f.alnum(48)),
        ("alnum_64", lambda f: f.alnum(64)),
        ("urlsafe_43", lambda f: f.urlsafe(43)),
        ("base64_44", lambda f: f.b64(32)),
    ]
    named: list[tuple[str, Callable[[Fakes], Shape]]] = []
    for name, length in [("x", 40), ("value", 32), ("upstream", 48), ("blob", 64), ("ref2", 36)]:

        def build(f: Fakes, name: str = name, length: int = length) -> Shape:
            token = f.alnum(length)
            return {name: token}, (token,)

        named.append((f"under_{name}", build))

    def nested(f: Fakes) -> Shape:
        token = f.alnum(44)
        return {"cfg": {"inner": {"v": token}}}, (token,)

    named.append(("nested", nested))
    note = "a 32-64 character mixed-case token under a neutral name"
    return texts("generic_token", values, note=note) + shapes("generic_token", named, note=note)


def _webhook_urls() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        (
            "slack",
            lambda f: (
                "https://hooks.slack.com/services/T"
                + f.chars(UPPER_ALNUM, 8)
                + "/B"
                + f.chars(UPPER_ALNUM, 10)
                + "/"
                + f.alnum(24)
            ),
        ),
        (
            "discord",
            lambda f: f"https://discord.com/api/webhooks/{f.digits(19)}/{f.urlsafe(68)}",
        ),
        (
            "discordapp",
            lambda f: f"https://discordapp.com/api/webhooks/{f.digits(18)}/{f.urlsafe(68)}",
        ),
        (
            "teams",
            lambda f: (
                f"https://flowmem.webhook.office.com/webhookb2/{_uuid(f)}@{_uuid(f)}"
                f"/IncomingWebhook/{f.hex(32)}/{_uuid(f)}"
            ),
        ),
        (
            "telegram_bot_api",
            lambda f: (
                f"https://api.telegram.org/bot{f.digits(10)}:AA{f.urlsafe(33)}"
                f"/sendMessage?chat_id=-100{f.digits(10)}"
            ),
        ),
        (
            "zapier_catch_hook",
            lambda f: (
                f"https://hooks.zapier.com/hooks/catch/{f.digits(7)}/{f.chars(LOWER_ALNUM, 6)}/"
            ),
        ),
        (
            "generic_token_query",
            lambda f: "https://ci.example.com/generic-webhook-trigger/invoke?token=" + f.alnum(32),
        ),
        (
            "ifttt",
            lambda f: "https://maker.ifttt.com/trigger/deploy/with/key/" + f.urlsafe(22),
        ),
        (
            "chat_space",
            lambda f: (
                "https://chat.googleapis.com/v1/spaces/AAAA"
                + f.urlsafe(7)
                + "/messages?key=AIzaSy"
                + f.chars(URLSAFE, 33)
                + "&token="
                + f.urlsafe(43)
            ),
        ),
    ]
    return texts("webhook_url", specs, note="a webhook URL is its own credential")


def _flow_memory_secrets() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("api_key", lambda f: "fm_" + f.urlsafe(43)),
        ("pairing_token", lambda f: "fmpair_" + f.urlsafe(32)),
        ("bearer_api_key", lambda f: "Bearer fm_" + f.urlsafe(43)),
    ]
    return texts("flow_memory_secret", specs, note="the server's own keys are credentials too")


# -- bearer, session and token material ----------------------------------------------------------


def _bearer_and_session() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("bearer", lambda f: "Bearer " + token40(f)),
        ("bearer_lowercase", lambda f: "bearer " + token40(f)),
        ("bearer_uppercase", lambda f: "BEARER " + token40(f)),
        ("bearer_mixed_case", lambda f: "BeArEr " + token40(f)),
        ("bearer_tab", lambda f: "Bearer\t" + token40(f)),
        ("bearer_two_spaces", lambda f: "Bearer  " + token40(f)),
        ("authorization_header_jwt", lambda f: "Authorization: Bearer " + hs256_jwt(f)),
        ("authorization_no_space", lambda f: "authorization:bearer " + token40(f)),
        ("authorization_shouting", lambda f: "AUTHORIZATION: BEARER " + token40(f)),
        ("token_scheme", lambda f: f'Authorization: Token token="{token40(f)}"'),
        (
            "basic_header",
            lambda f: (
                "Authorization: Basic " + _b64(f"svc-market:{(p := f.password())}"),
                f"svc-market:{p}",
            ),
        ),
        ("basic_bare", lambda f: "Basic " + _b64(f"ops:{f.password()}")),
        ("proxy_authorization", lambda f: "Proxy-Authorization: Bearer " + token40(f)),
        ("x_api_key_header", lambda f: "X-Api-Key: " + f.alnum(32)),
        ("x_auth_token_header", lambda f: "x-auth-token: " + f.alnum(36)),
        ("session_cookie", lambda f: "session=" + f.urlsafe(43)),
        ("sessionid_cookie", lambda f: "sessionid=" + f.chars(LOWER_ALNUM, 32)),
        (
            "cookie_header",
            lambda f: f"Cookie: session={f.urlsafe(40)}; csrftoken={f.alnum(32)}; theme=dark",
        ),
        ("cookie_header_lowercase", lambda f: f"cookie: sid={f.urlsafe(32)}"),
        (
            "set_cookie_next_auth",
            lambda f: (
                "Set-Cookie: __Secure-next-auth.session-token="
                + b64url_json({"alg": "dir", "enc": "A256GCM"})
                + ".."
                + f.urlsafe(22)
                + "."
                + f.urlsafe(120)
                + "."
                + f.urlsafe(22)
                + "; Path=/; HttpOnly; Secure"
            ),
        ),
        (
            "connect_sid",
            lambda f: f"connect.sid=s%3A{f.urlsafe(32)}.{f.alnum(43)}",
        ),
        ("phpsessid", lambda f: "PHPSESSID=" + f.chars(LOWER_ALNUM, 26)),
        ("jsessionid", lambda f: "JSESSIONID=" + f.chars("0123456789ABCDEF", 32)),
        ("gitlab_session", lambda f: "_gitlab_session=" + f.hex(32)),
        (
            "oauth_token_response",
            lambda f: f"access_token={token40(f)}&token_type=Bearer&expires_in=3600",
        ),
        (
            "api_key_in_query",
            lambda f: "https://api.example.com/v1/models?api_key=" + f.alnum(32),
        ),
    ]
    return texts("bearer_session", specs)


def _jwts() -> list[Case]:
    def line_broken(f: Fakes) -> Text:
        token = hs256_jwt(f)
        # The joined form is what a server that strips whitespace would keep.
        return token.replace(".", "\n.", 2), token

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("hs256", hs256_jwt),
        (
            "rs256_with_kid",
            lambda f: f.jwt(
                {"alg": "RS256", "typ": "JWT", "kid": f.hex(16)},
                {"iss": "https://id.example.com", "sub": "svc-market", "aud": "market"},
                256,
            ),
        ),
        (
            "es256",
            lambda f: f.jwt({"alg": "ES256"}, {"sub": "buyer-7", "exp": 1893456000}, 64),
        ),
        (
            "alg_none_empty_signature",
            lambda f: f.jwt({"alg": "none", "typ": "JWT"}, {"sub": "operator", "admin": True}, 0),
        ),
        (
            "alg_none_capitalised",
            lambda f: f.jwt({"alg": "None"}, {"sub": "operator", "scope": "inference:admin"}, 0),
        ),
        (
            "alg_none_shouting",
            lambda f: f.jwt({"typ": "JWT", "alg": "NONE"}, {"sub": "agent-" + f.digits(5)}, 0),
        ),
        (
            "jwe_compact",
            lambda f: (
                b64url_json({"alg": "dir", "enc": "A256GCM"})
                + ".."
                + f.b64url(12)
                + "."
                + f.b64url(96)
                + "."
                + f.b64url(16)
            ),
        ),
        (
            "kubernetes_service_account",
            lambda f: f.jwt(
                {"alg": "RS256", "kid": f.urlsafe(43)},
                {
                    "iss": "kubernetes/serviceaccount",
                    "kubernetes.io/serviceaccount/namespace": "market",
                    "sub": "system:serviceaccount:market:writer",
                },
                256,
            ),
        ),
        (
            "id_token",
            lambda f: f.jwt(
                {"alg": "RS256", "kid": f.hex(40), "typ": "JWT"},
                {"iss": "https://accounts.example.com", "email": "ops@example.invalid"},
                256,
            ),
        ),
        ("line_broken", line_broken),
        (
            "grafana_api_key",
            lambda f: "eyJrIjoi" + f.alnum(70) + "In0=",
        ),
    ]
    return texts("jwt", specs)


# -- private keys -----------------------------------------------------------------------------


def _pem_keys() -> list[Case]:
    def putty(f: Fakes) -> str:
        return (
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ops@example\n"
            f"Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAI{f.b64(30)}\n{f.b64(12)}\n"
            f"Private-Lines: 1\n{f.b64(36)}\nPrivate-MAC: {f.hex(64)}"
        )

    def lowercase_header(f: Fakes) -> Text:
        body = f.rsa_pkcs8_body()
        return f"-----begin private key-----\n{wrap(body)}\n-----end private key-----", body[:64]

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("pkcs8_rsa", lambda f: pem("PRIVATE KEY", f.rsa_pkcs8_body())),
        ("pkcs1_rsa", lambda f: pem("RSA PRIVATE KEY", f.rsa_pkcs1_body())),
        ("sec1_ec", lambda f: pem("EC PRIVATE KEY", f.ec_sec1_body())),
        ("pkcs8_ed25519", ed25519_pem),
        ("openssh", lambda f: pem("OPENSSH PRIVATE KEY", f.openssh_body(), width=70)),
        (
            "encrypted_pkcs8",
            lambda f: pem("ENCRYPTED PRIVATE KEY", f.pem_body(bytes.fromhex("308205"), 1300)),
        ),
        ("dsa", lambda f: pem("DSA PRIVATE KEY", f.pem_body(bytes.fromhex("308201bb"), 440))),
        (
            "pgp_private_block",
            lambda f: (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
                + wrap(f.pem_body(b"\x95\x03\x98\x04", 900))
                + "\n="
                + f.b64(3)
                + "\n-----END PGP PRIVATE KEY BLOCK-----"
            ),
        ),
        ("lowercase_header", lowercase_header),
        (
            "odd_spacing",
            lambda f: (
                "-----BEGIN  RSA  PRIVATE KEY -----\n"
                + wrap(f.rsa_pkcs1_body())
                + "\n----- END RSA PRIVATE KEY-----"
            ),
        ),
        (
            "four_dashes",
            lambda f: (
                "----BEGIN PRIVATE KEY----\n" + wrap(f.ed25519_body()) + "\n----END PRIVATE KEY----"
            ),
        ),
        ("crlf", lambda f: pem("EC PRIVATE KEY", f.ec_sec1_body(), newline="\r\n")),
        (
            "escaped_newlines",
            lambda f: pem("PRIVATE KEY", f.rsa_pkcs8_body()).replace("\n", "\\n"),
        ),
        ("body_without_header", lambda f: wrap(f.rsa_pkcs8_body())),
        ("ec_body_one_line", lambda f: f.ec_sec1_body()),
        ("ed25519_body_one_line", lambda f: f.ed25519_body()),
        ("putty", putty),
    ]
    cases = texts("pem_private_key", specs)
    # The first full line of key material, so a server that stored the key with its header,
    # spacing or line endings rewritten is caught as well.
    return [
        Case(c.id, c.kind, value=c.value, needles=(*c.needles, _first_base64_run(c.value or "")))
        for c in cases
    ]


def _first_base64_run(text: str) -> str:
    match = re.search(r"[A-Za-z0-9+/]{40,}", text)
    assert match, text
    return match.group()[:64]


def _signing_keys() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("hex_0x", lambda f: "0x" + f.hex(64)),
        ("hex_0x_uppercase", lambda f: "0X" + f.hex(64).upper()),
        ("hex_after_privkey", lambda f: "privkey " + f.hex(64)),
        ("hex_after_private_key_colon", lambda f: "private key: " + f.hex(64)),
        ("hex_after_key_equals", lambda f: "key=" + f.hex(64)),
        ("hex_after_signing_key", lambda f: "signing key " + f.hex(64)),
        ("hex_in_sentence", lambda f: f"my wallet key is {f.hex(64)} do not share"),
        ("env_private_key", lambda f: "PRIVATE_KEY=0x" + f.hex(64)),
        ("wif_compressed", lambda f: f.wif()),
        ("wif_uncompressed", lambda f: f.wif(compressed=False)),
        ("wif_testnet", lambda f: f.wif(testnet=True)),
        ("xprv", lambda f: f.extended_private_key()),
        ("tprv", lambda f: f.extended_private_key("04358394")),
        ("yprv", lambda f: f.extended_private_key("049d7878")),
        ("zprv", lambda f: f.extended_private_key("04b2430c")),
        ("solana_secret_base58", lambda f: base58(f.raw(64))),
        (
            "solana_keypair_text",
            lambda f: json.dumps(list(f.raw(64)), separators=(",", ":")),
        ),
        ("nostr_nsec", lambda f: f.bech32("nsec", f.raw(32))),
        ("age_secret_key", lambda f: f.bech32("age-secret-key-", f.raw(32)).upper()),
        ("signature_hex", lambda f: "signature: 0x" + f.hex(130)),
    ]

    named: list[tuple[str, Callable[[Fakes], Shape]]] = []
    for name in ["k", "pk", "sk", "priv", "key", "d", "kp"]:

        def build(f: Fakes, name: str = name) -> Shape:
            key = f.hex(64)
            return {name: key}, (key,)

        named.append((f"hex_under_{name}", build))

    def keypair_array(f: Fakes) -> Shape:
        numbers = list(f.raw(64))
        return {"keypair": numbers}, (
            json.dumps(numbers),
            json.dumps(numbers, separators=(",", ":")),
        )

    def keystore(f: Fakes) -> Shape:
        ciphertext, salt, mac = f.hex(64), f.hex(64), f.hex(64)
        return (
            {
                "keystore": {
                    "version": 3,
                    "id": _uuid(f),
                    "address": f.hex(40),
                    "crypto": {
                        "cipher": "aes-128-ctr",
                        "ciphertext": ciphertext,
                        "cipherparams": {"iv": f.hex(32)},
                        "kdf": "scrypt",
                        "kdfparams": {"dklen": 32, "n": 262144, "p": 1, "r": 8, "salt": salt},
                        "mac": mac,
                    },
                }
            },
            (ciphertext, salt, mac),
        )

    def signature_field(f: Fakes) -> Shape:
        signature = "0x" + f.hex(130)
        return {"signature": signature}, (signature,)

    named += [
        ("keypair_array", keypair_array),
        ("keystore_v3", keystore),
        ("signature_field", signature_field),
    ]
    return texts("signing_key", specs) + shapes("signing_key", named)


def _mnemonics() -> list[Case]:
    def phrase(language: str, words: int = 12) -> Callable[[Fakes], Text]:
        return lambda f: f.mnemonic(language, words)

    def english(f: Fakes) -> list[str]:
        return f.mnemonic("english").split(" ")

    def japanese_ascii(f: Fakes) -> Text:
        original = f.mnemonic("japanese")
        return original.replace("\u3000", " "), original

    def chinese_joined(f: Fakes) -> Text:
        original = f.mnemonic("chinese_simplified")
        return original.replace(" ", ""), original

    def spanish_nfd(f: Fakes) -> Text:
        original = f.mnemonic("spanish", 24)
        return unicodedata.normalize("NFD", original), unicodedata.normalize("NFC", original)

    def variant(render: Callable[[list[str]], str]) -> Callable[[Fakes], Text]:
        def build(f: Fakes) -> Text:
            words = english(f)
            return render(words), " ".join(words)

        return build

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("english_12", phrase("english")),
        ("english_15", phrase("english", 15)),
        ("english_18", phrase("english", 18)),
        ("english_21", phrase("english", 21)),
        ("english_24", phrase("english", 24)),
        ("spanish_12", phrase("spanish")),
        ("spanish_24", phrase("spanish", 24)),
        ("french_12", phrase("french")),
        ("italian_12", phrase("italian")),
        ("czech_12", phrase("czech")),
        ("portuguese_12", phrase("portuguese")),
        ("korean_12", phrase("korean")),
        ("japanese_12", phrase("japanese")),
        ("japanese_ascii_spaces", japanese_ascii),
        ("chinese_simplified_12", phrase("chinese_simplified")),
        ("chinese_simplified_joined", chinese_joined),
        ("chinese_traditional_12", phrase("chinese_traditional")),
        ("russian_12", phrase("russian")),
        ("turkish_12", phrase("turkish")),
        ("spanish_decomposed_accents", spanish_nfd),
        ("english_uppercase", variant(lambda w: " ".join(w).upper())),
        ("english_title_case", variant(lambda w: " ".join(x.title() for x in w))),
        ("english_commas", variant(lambda w: ", ".join(w))),
        ("english_newlines", variant(lambda w: "\n".join(w))),
        ("english_numbered", variant(lambda w: " ".join(f"{i}. {x}" for i, x in enumerate(w, 1)))),
        (
            "english_numbered_lines",
            variant(lambda w: "\n".join(f"{i}) {x}" for i, x in enumerate(w, 1))),
        ),
        ("english_hyphens", variant(lambda w: "-".join(w))),
        ("english_tabs_and_spaces", variant(lambda w: "  \t ".join(w))),
        (
            "english_in_a_sentence",
            variant(lambda w: "my recovery phrase is " + " ".join(w) + " please keep it safe"),
        ),
    ]
    return texts("mnemonic", specs)


# -- credentials inside URLs and text --------------------------------------------------------


def _passwords_in_urls() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("https_basic", lambda f: f"https://deploy:{f.alnum(18)}@provider-alpha.example/v1"),
        ("http_admin_ip", lambda f: f"http://admin:{f.alnum(16)}@10.0.0.5:8080/admin"),
        ("https_uppercase_scheme", lambda f: f"HTTPS://Admin:{f.alnum(16)}@Provider.Example/v1"),
        (
            "percent_encoded_password",
            lambda f: f"https://ops:{f.alnum(8)}%40{f.alnum(8)}%3A1@api.example.com/",
        ),
        (
            "git_installation_token",
            lambda f: f"https://x-access-token:ghs_{f.alnum(36)}@github.com/flow-memory/agent.git",
        ),
        (
            "git_oauth2",
            lambda f: f"https://oauth2:glpat-{f.urlsafe(20)}@gitlab.example.com/ops/infra.git",
        ),
        (
            "package_upload",
            lambda f: (
                f"https://__token__:pypi-AgEIcHlwaS5vcmc{f.urlsafe(120)}@upload.pypi.org/legacy/"
            ),
        ),
        ("postgres", lambda f: f"postgres://app:{f.password()}@db.internal:5432/flow_memory"),
        (
            "postgresql_driver",
            lambda f: f"postgresql+psycopg://app:{f.alnum(24)}@10.1.2.3:5432/prod?sslmode=require",
        ),
        ("mysql", lambda f: f"mysql://root:{f.alnum(20)}@mysql.internal:3306/billing"),
        (
            "mongodb_srv",
            lambda f: (
                f"mongodb+srv://svc:{f.alnum(20)}@cluster0.ab1cd.mongodb.net/market"
                "?retryWrites=true&w=majority"
            ),
        ),
        ("redis_password_only", lambda f: f"redis://:{f.alnum(32)}@cache.internal:6379/0"),
        ("rediss_default_user", lambda f: f"rediss://default:{f.alnum(32)}@redis.example.com:6380"),
        ("amqp", lambda f: f"amqp://market:{f.alnum(20)}@rabbit.internal:5672/%2F"),
        ("ftp", lambda f: f"ftp://upload:{f.alnum(14)}@files.example.com/incoming"),
        ("sftp", lambda f: f"sftp://deploy:{f.alnum(14)}@files.example.com:22/models"),
        ("smtp", lambda f: f"smtp://mailer:{f.alnum(24)}@smtp.example.com:587"),
        ("sentry_legacy_dsn", lambda f: f"https://{f.hex(32)}:{f.hex(32)}@sentry.example.com/42"),
        (
            "twilio_basic",
            lambda f: f"https://AC{f.hex(32)}:{f.hex(32)}@api.twilio.com/2010-04-01/Accounts",
        ),
    ]
    return texts("password_in_url", specs)


def _credential_text() -> list[Case]:
    def env_pair(f: Fakes) -> str:
        return f"AWS_ACCESS_KEY_ID={aws_key_id(f)}\nAWS_SECRET_ACCESS_KEY={aws_secret(f)}"

    def docker_config(f: Fakes) -> Text:
        plain = f"bot:{f.password()}"
        return json.dumps({"auths": {"registry.example.com": {"auth": _b64(plain)}}}), plain

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("env_openai", lambda f: "OPENAI_API_KEY=" + openai_project(f)),
        ("env_export_aws", lambda f: "export AWS_SECRET_ACCESS_KEY=" + aws_secret(f)),
        ("env_aws_pair", env_pair),
        ("env_twilio_auth_token", lambda f: "TWILIO_AUTH_TOKEN=" + f.hex(32)),
        ("npmrc", lambda f: "//registry.npmjs.org/:_authToken=npm_" + f.alnum(36)),
        ("netrc", lambda f: f"machine api.example.com login bot password {f.password()}"),
        ("pgpass", lambda f: f"db.internal:5432:market:app:{f.password()}"),
        ("docker_config", docker_config),
        ("kubeconfig", lambda f: "users:\n- name: ci\n  user:\n    token: " + hs256_jwt(f)),
        ("yaml_password", lambda f: f"db:\n  host: db.internal\n  password: {f.password()}"),
        ("json_api_key", lambda f: json.dumps({"api_key": f.alnum(40)})),
        ("toml_secret_key", lambda f: f'secret_key = "{f.alnum(50)}"'),
        ("curl_user", lambda f: f"curl -u admin:{f.password()} https://api.example.com/v1/orders"),
        (
            "curl_header",
            lambda f: f"curl -H 'Authorization: Bearer {token40(f)}' https://api.example.com/v1",
        ),
        (
            "otpauth",
            lambda f: (
                "otpauth://totp/FlowMemory:ops?secret="
                + base64.b32encode(f.raw(20)).decode()
                + "&issuer=FlowMemory"
            ),
        ),
        (
            "ado_connection_string",
            lambda f: (
                "Server=tcp:flowmem.database.windows.net,1433;Initial Catalog=market;"
                f"User ID=app;Password={f.password()};Encrypt=True;"
            ),
        ),
        (
            "jdbc",
            lambda f: f"jdbc:postgresql://db.internal:5432/app?user=app&password={f.password()}",
        ),
        ("odbc", lambda f: f"DRIVER={{PostgreSQL}};SERVER=db;UID=app;PWD={f.password()};"),
        (
            "prose_password",
            lambda f: f"the staging db password is {f.password()}, please rotate after use",
        ),
    ]
    return texts("credential_text", specs)


# -- secret-like field names -------------------------------------------------------------------

SECRET_FIELD_NAMES = [
    "pwd",
    "pass",
    "passwd",
    "password",
    "passphrase",
    "cookie",
    "session_id",
    "sessionid",
    "session_token",
    "credentials",
    "creds",
    "auth",
    "auth_token",
    "authorization",
    "key",
    "apikey",
    "apiKey",
    "api-key",
    "x-api-key",
    "client_secret",
    "secret",
    "secret_key",
    "private_key",
    "privateKey",
    "access_token",
    "refresh_token",
    "id_token",
    "bearer",
    "token",
    "otp_secret",
    "totp_seed",
    "db_password",
    "smtpPass",
    "awsSecretAccessKey",
    "signing_key",
    "webhook_secret",
    "seed_phrase",
    "mnemonic",
]

DISGUISED_FIELD_NAMES = {
    "fullwidth": "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",
    "fullwidth_upper": "\uff21\uff30\uff29\uff3f\uff2b\uff25\uff39",
    "cyrillic_p_a": "\u0440\u0430ssword",
    "cyrillic_e_in_key": "api_k\u0435y",
    "greek_omicron": "t\u03bfken",
    "cyrillic_dze": "\u0455ecret",
    "cyrillic_e_private_key": "privat\u0435_k\u0435y",
    "zero_width_space": "pass\u200bword",
    "soft_hyphen": "secret\u00adkey",
    "combining_mark": "pa\u0308ssword",
    "math_bold": "\U0001d429\U0001d41a\U0001d42c\U0001d42c\U0001d430\U0001d428\U0001d42b\U0001d41d",
    "uppercase": "PASSWORD",
    "camel_case": "PassWord",
    "underscore": "pass_word",
    "hyphen": "pass-word",
    "space": "Api Key",
    "dot": "api.key",
}


def _secret_field_names() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Shape]]] = []
    for name in SECRET_FIELD_NAMES:

        def build(f: Fakes, name: str = name) -> Shape:
            secret = f.password()
            return {name: secret}, (secret,)

        specs.append((name, build))

    def nested_auth(f: Fakes) -> Shape:
        secret = f.password()
        return {"upstream_auth": {"username": "ops", "password": secret}}, (secret,)

    def list_of_accounts(f: Fakes) -> Shape:
        secret = f.password()
        return {"accounts": [{"user": "bot", "pass": secret}]}, (secret,)

    def header_map(f: Fakes) -> Shape:
        token = token40(f)
        return {"headers": {"Authorization": f"Bearer {token}"}}, (token,)

    def postmark(f: Fakes) -> Shape:
        token = _uuid(f)
        return {"X-Postmark-Server-Token": token}, (token,)

    specs += [
        ("nested_password", nested_auth),
        ("list_of_accounts", list_of_accounts),
        ("header_map", header_map),
        ("server_token_uuid", postmark),
    ]
    cases = shapes(
        "secret_field_name",
        specs,
        note="the value is an ordinary password: only the field name says it is a secret",
    )
    disguised: list[tuple[str, Callable[[Fakes], Shape]]] = []
    for label, name in DISGUISED_FIELD_NAMES.items():

        def build_disguised(f: Fakes, name: str = name) -> Shape:
            secret = f.password()
            return {name: secret}, (secret,)

        disguised.append((label, build_disguised))
    return cases + shapes("disguised_field_name", disguised)


def _split_secrets() -> list[Case]:
    def halves(
        build_key: Callable[[Fakes], str], a: str, b: str, at: int
    ) -> Callable[[Fakes], Shape]:
        def build(f: Fakes) -> Shape:
            key = build_key(f)
            return {a: key[:at], b: key[at:]}, (key[at:], key)

        return build

    def three_parts(f: Fakes) -> Shape:
        key = anthropic(f)
        return {"p1": key[:30], "p2": key[30:70], "p3": key[70:]}, (key[30:70], key[70:], key)

    def hex_halves(f: Fakes) -> Shape:
        key = f.hex(64)
        return {"a": "0x" + key[:32], "b": key[32:]}, (key[:32], key[32:], "0x" + key)

    def mnemonic_halves(f: Fakes) -> Shape:
        words = f.mnemonic("english").split(" ")
        first, second = " ".join(words[:6]), " ".join(words[6:])
        return {"words_1_to_6": first, "words_7_to_12": second}, (first, second)

    def mnemonic_quarters(f: Fakes) -> Shape:
        words = f.mnemonic("english", 24).split(" ")
        parts = {f"w{i}": " ".join(words[i * 6 : i * 6 + 6]) for i in range(4)}
        return parts, tuple(parts.values())

    def pem_parts(f: Fakes) -> Shape:
        body = f.ed25519_body()
        return (
            {
                "pem_header": "-----BEGIN PRIVATE KEY-----",
                "pem_body": body,
                "pem_footer": "-----END PRIVATE KEY-----",
            },
            (body,),
        )

    def jwt_parts(f: Fakes) -> Shape:
        token = hs256_jwt(f)
        head, rest = token.split(".", 1)
        return {"jwt_head": head, "jwt_rest": rest}, (rest, token)

    def aws_pair(f: Fakes) -> Shape:
        key_id, secret = aws_key_id(f), aws_secret(f)
        return {"id": key_id, "s": secret}, (key_id, secret)

    def list_parts(f: Fakes) -> Shape:
        key = openai_project(f)
        return {"parts": [key[:40], key[40:]]}, (key[40:], key)

    def nested_parts(f: Fakes) -> Shape:
        key = stripe_live(f)
        return {"left": {"v": key[:30]}, "right": {"v": key[30:]}}, (key[30:], key)

    def base64_halves(f: Fakes) -> Shape:
        key = github_pat(f)
        encoded = _b64(key)
        return {"chunk0": encoded[:28], "chunk1": encoded[28:]}, (encoded[28:], encoded, key)

    specs: list[tuple[str, Callable[[Fakes], Shape]]] = [
        ("openai_halves", halves(openai_project, "key_part_1", "key_part_2", 70)),
        ("stripe_prefix_and_rest", halves(stripe_live, "prefix", "suffix", 8)),
        ("github_halves", halves(github_pat, "token_a", "token_b", 20)),
        ("slack_halves", halves(slack_bot, "s1", "s2", 31)),
        ("anthropic_three_parts", three_parts),
        ("hex_key_halves", hex_halves),
        ("mnemonic_halves", mnemonic_halves),
        ("mnemonic_quarters", mnemonic_quarters),
        ("pem_header_body_footer", pem_parts),
        ("jwt_head_and_rest", jwt_parts),
        ("aws_key_pair", aws_pair),
        ("list_parts", list_parts),
        ("nested_parts", nested_parts),
        ("base64_halves", base64_halves),
    ]
    return shapes("split_secret", specs, note="one secret spread over fields of one body")


# -- encodings and disguises ------------------------------------------------------------------


def _encoded() -> list[Case]:
    def encode(
        build_key: Callable[[Fakes], str], how: Callable[[str], str]
    ) -> Callable[[Fakes], Text]:
        def build(f: Fakes) -> Text:
            key = build_key(f)
            return how(key), key

        return build

    def url_all(text: str) -> str:
        return "".join(f"%{b:02X}" for b in text.encode())

    def mime(text: str) -> str:
        encoded = _b64(text)
        return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))

    def english(f: Fakes) -> str:
        return f.mnemonic("english")

    def html_entities(text: str) -> str:
        return "".join(f"&#{ord(c)};" for c in text)

    def json_escapes(text: str) -> str:
        return "".join(f"\\u{ord(c):04x}" for c in text)

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("base64_openai", encode(openai_project, _b64)),
        ("base64_anthropic", encode(anthropic, _b64)),
        ("base64_mnemonic", encode(english, _b64)),
        ("base64_pem", encode(ed25519_pem, _b64)),
        ("base64_bearer", encode(lambda f: "Bearer " + token40(f), _b64)),
        ("base64_mime_lines", encode(stripe_live, mime)),
        (
            "base64url_github",
            encode(github_pat, lambda k: base64.urlsafe_b64encode(k.encode()).decode().rstrip("=")),
        ),
        (
            "base64url_mnemonic",
            encode(english, lambda k: base64.urlsafe_b64encode(k.encode()).decode().rstrip("=")),
        ),
        ("base64_twice", encode(openai_legacy, lambda k: _b64(_b64(k)))),
        ("base64_json", encode(lambda f: json.dumps({"api_key": f.alnum(40)}), _b64)),
        ("base64_hex_key", encode(lambda f: "0x" + f.hex(64), _b64)),
        ("base64_wif", encode(lambda f: f.wif(), _b64)),
        ("hex_github", encode(github_pat, lambda k: k.encode().hex())),
        ("hex_mnemonic", encode(english, lambda k: k.encode().hex())),
        ("hex_uppercase_anthropic", encode(anthropic, lambda k: k.encode().hex().upper())),
        ("base32_aws_secret", encode(aws_secret, lambda k: base64.b32encode(k.encode()).decode())),
        ("url_encoded_every_byte", encode(openai_legacy, url_all)),
        ("url_encoded_hyphens", encode(openai_project, lambda k: k.replace("-", "%2D"))),
        ("url_encoded_twice", encode(openai_legacy, lambda k: url_all(k).replace("%", "%25"))),
        (
            "url_encoded_form",
            encode(lambda f: "password=" + f.password(), lambda k: urllib.parse.quote(k, safe="")),
        ),
        ("data_uri_text", encode(openai_project, lambda k: "data:text/plain;base64," + _b64(k))),
        ("html_entities", encode(stripe_live, html_entities)),
        ("json_unicode_escapes", encode(github_pat, json_escapes)),
        ("reversed", encode(openai_legacy, lambda k: k[::-1])),
    ]
    return texts("encoded_secret", specs, note="the decoded form is the secret")


def _unicode_disguises() -> list[Case]:
    def disguise(
        build_key: Callable[[Fakes], str], how: Callable[[str], str]
    ) -> Callable[[Fakes], Text]:
        def build(f: Fakes) -> Text:
            key = build_key(f)
            return how(key), key

        return build

    def every(step: int, mark: str) -> Callable[[str], str]:
        return lambda k: mark.join(k[i : i + step] for i in range(0, len(k), step))

    def combining(mark: str, count: int) -> Callable[[str], str]:
        return lambda k: "".join(c + mark if i < count else c for i, c in enumerate(k))

    def cyrillic_mnemonic(f: Fakes) -> Text:
        phrase = f.mnemonic("english")
        return phrase.replace("a", "\u0430").replace("e", "\u0435").replace("o", "\u043e"), phrase

    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("fullwidth_openai", disguise(openai_legacy, fullwidth)),
        ("fullwidth_prefix_only", disguise(openai_project, lambda k: fullwidth(k[:8]) + k[8:])),
        ("fullwidth_github", disguise(github_pat, fullwidth)),
        ("zero_width_after_prefix", disguise(openai_project, lambda k: "sk-\u200b" + k[3:])),
        ("zero_width_every_8", disguise(stripe_live, every(8, "\u200b"))),
        ("zwnj_aws", disguise(aws_key_id, every(4, "\u200c"))),
        ("zwj_anthropic", disguise(anthropic, every(10, "\u200d"))),
        ("word_joiner_github", disguise(github_pat, lambda k: k[:4] + "\u2060" + k[4:])),
        ("byte_order_mark", disguise(slack_bot, lambda k: "\ufeff" + k[:5] + "\ufeff" + k[5:])),
        ("soft_hyphen", disguise(anthropic, lambda k: k[:7] + "\u00ad" + k[7:])),
        ("combining_acute", disguise(openai_legacy, combining("\u0301", 3))),
        ("combining_overlay", disguise(github_pat, combining("\u0336", 4))),
        ("cyrillic_sk", disguise(openai_project, lambda k: "\u0455\u043a" + k[2:])),
        ("greek_akia", disguise(aws_key_id, lambda k: "\u0391\u039a\u0399\u0391" + k[4:])),
        ("cyrillic_akia", disguise(aws_key_id, lambda k: "\u0410\u041a\u0406\u0410" + k[4:])),
        ("uppercase_prefix", disguise(openai_project, lambda k: k[:8].upper() + k[8:])),
        ("title_case_stripe", disguise(stripe_live, lambda k: "Sk_Live_" + k[8:])),
        ("uppercase_github", disguise(github_pat, lambda k: "GHP_" + k[4:])),
        ("uppercase_slack", disguise(slack_bot, lambda k: "XOXB-" + k[5:])),
        (
            "math_bold_prefix",
            disguise(openai_project, lambda k: "\U0001d42c\U0001d424-" + k[3:]),
        ),
        ("nbsp_bearer", disguise(token40, lambda k: "Bearer\u00a0" + k)),
        ("fullwidth_hex_key", disguise(lambda f: "0x" + f.hex(64), fullwidth)),
        ("rtl_override", disguise(stripe_live, lambda k: k[:12] + "\u202e" + k[12:])),
        ("cyrillic_mnemonic", cyrillic_mnemonic),
        (
            "ideographic_space_english",
            disguise(lambda f: f.mnemonic("english"), lambda k: k.replace(" ", "\u3000")),
        ),
    ]
    return texts("unicode_disguise", specs, note="the clean form is the secret")


def _keys_in_references() -> list[Case]:
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("openai", lambda f: "secret://" + openai_project(f)),
        ("github", lambda f: "secret://inference/" + github_pat(f)),
        ("anthropic", lambda f: "secret://" + anthropic(f)),
        ("hex_key", lambda f: "secret://inference/" + f.hex(64)),
        ("gitlab", lambda f: "secret://inference/glpat-" + f.urlsafe(20)),
        ("vault_token", lambda f: "secret://vault/hvs.CAESI" + f.urlsafe(90)),
        ("aws_pair", lambda f: f"secret://{aws_key_id(f)}/{f.alnum(40)}"),
    ]
    return texts(
        "key_in_reference",
        specs,
        note="shaped like a reference, but the path is a raw credential",
    )


# -- value transfer -------------------------------------------------------------------------


def _value_transfer() -> list[Case]:
    def with_address(template: str, make: Callable[[Fakes], str]) -> Callable[[Fakes], Text]:
        def build(f: Fakes) -> Text:
            target = make(f)
            return template.format(target=target, digits=f.digits(4)), target

        return build

    eth = Fakes.eth_address
    specs: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("usdc_to_address", with_address("transfer 10 USDC to {target}", eth)),
        (
            "eth_to_address",
            with_address("Send 0.25 ETH to {target} as soon as the order fills", eth),
        ),
        (
            "send_funds_btc",
            with_address("please send funds to {target} (0.015 BTC)", Fakes.btc_segwit_address),
        ),
        (
            "btc_legacy",
            with_address("pay the provider 0.2 BTC at {target}", Fakes.btc_legacy_address),
        ),
        ("usdt_tron", with_address("pay 250 USDT (TRC-20) to {target}", Fakes.tron_address)),
        (
            "sol_payout",
            with_address("send 2 SOL to {target} for the provider payout", Fakes.solana_address),
        ),
        (
            "wire_iban_swift",
            with_address(
                "Wire USD 25,000 to IBAN {target} BIC COBADEFFXXX, reference INV-2026-{digits}",
                lambda f: f.iban("DE"),
            ),
        ),
        (
            "german_transfer",
            with_address("Bitte überweisen Sie 500 EUR an IBAN {target}", lambda f: f.iban("DE")),
        ),
        (
            "french_transfer",
            with_address(
                "virement de 1 200 EUR vers {target} (BIC BNPAFRPPXXX)", lambda f: f.iban("FR")
            ),
        ),
        ("spanish_transfer", with_address("transferir 10 USDC a {target}", eth)),
        (
            "swift_mt103",
            with_address(
                "SWIFT MT103: beneficiary {target}, amount EUR 12,500.00, charges OUR",
                lambda f: f.iban("GB"),
            ),
        ),
        (
            "approve_unlimited_text",
            with_address("approve unlimited USDC allowance for spender {target}", eth),
        ),
        ("approve_max_uint", with_address("approve({target}, " + MAX_UINT256 + ")", eth)),
        ("set_approval_for_all", with_address("setApprovalForAll({target}, true)", eth)),
        ("increase_allowance", with_address("increaseAllowance({target}, type(uint256).max)", eth)),
        ("withdraw_all", with_address("withdraw the whole balance to {target}", eth)),
        (
            "swap_and_send",
            with_address("swap 5 ETH for USDC and send the proceeds to {target}", eth),
        ),
        ("eth_legacy_signed_tx", lambda f: f.eth_legacy_signed_tx()),
        ("eth_1559_signed_tx", lambda f: f.eth_1559_signed_tx()),
        (
            "send_raw_transaction",
            with_address("eth_sendRawTransaction {target}", Fakes.eth_1559_signed_tx),
        ),
        (
            "broadcast_signed_tx",
            with_address(
                "broadcast this signed transaction now: {target}", Fakes.eth_legacy_signed_tx
            ),
        ),
        ("btc_signed_tx", lambda f: f.btc_signed_tx()),
        ("psbt", lambda f: base64.b64encode(b"psbt\xff\x01\x00" + f.raw(180)).decode()),
        (
            "bip21_uri",
            with_address(
                "bitcoin:{target}?amount=0.5&label=provider-payout", Fakes.btc_segwit_address
            ),
        ),
        (
            "eip681_uri",
            with_address(
                "ethereum:0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48@1/transfer?address={target}&uint256=1e7",
                eth,
            ),
        ),
        ("lightning_invoice", lambda f: "lnbc2500u1p" + f.chars(BECH32, 250)),
        (
            "ach",
            lambda f: (
                f"ACH transfer: routing 021000021, account {(a := f.digits(10))}, amount $900.00",
                a,
            ),
        ),
    ]

    def tx_object(f: Fakes) -> Shape:
        target = f.eth_address()
        return {"to": target, "value": "0xde0b6b3a7640000", "data": "0x", "gas": "0x5208"}, (
            target,
        )

    def single(name: str, make: Callable[[Fakes], str]) -> Callable[[Fakes], Shape]:
        def build(f: Fakes) -> Shape:
            target = make(f)
            return {name: target}, (target,)

        return build

    def transfer(f: Fakes) -> Shape:
        target = f.eth_address()
        return {"amount": "10", "asset": "USDC", "destination": target}, (target,)

    def wire(f: Fakes) -> Shape:
        iban = f.iban("NL")
        return {"wire": {"iban": iban, "bic": "INGBNL2AXXX", "amount": "25000.00"}}, (iban,)

    def approve(f: Fakes) -> Shape:
        target = f.eth_address()
        return {"approve": {"spender": target, "amount": "unlimited"}}, (target,)

    def sol_transfer(f: Fakes) -> Shape:
        target = f.solana_address()
        return {"transfer": {"to": target, "lamports": 2_000_000_000}}, (target,)

    shaped: list[tuple[str, Callable[[Fakes], Shape]]] = [
        ("payout_address", single("payout_address", Fakes.eth_address)),
        ("recipient_wallet", single("recipient_wallet", Fakes.btc_segwit_address)),
        ("tx_object", tx_object),
        ("transfer_object", transfer),
        ("wire_object", wire),
        ("approve_object", approve),
        ("signed_tx_field", single("signed_tx", Fakes.eth_1559_signed_tx)),
        ("sol_transfer", sol_transfer),
    ]
    return texts("value_transfer", specs) + shapes("value_transfer", shaped)


def _payment_targets() -> list[Case]:
    # Borderline, decided as forbidden: a bank account or a wallet address on its own is not a
    # secret, but in a dry-run market that moves no funds it has no use except as the target of
    # a payment, and a record that holds one reads as a payment instruction. A content hash or a
    # git SHA (plain hex, no 0x, no country code) stays harmless; see harmless.py.
    note = "borderline: a payment target alone, refused because nothing here pays anyone"
    values: list[tuple[str, Callable[[Fakes], Text]]] = [
        ("iban_alone", lambda f: f.iban("ES")),
        ("eth_address_alone", lambda f: f.eth_address()),
    ]

    def bank(f: Fakes) -> Shape:
        iban = f.iban("DE")
        return {"bank_account": iban}, (iban,)

    def neutral(f: Fakes) -> Shape:
        target = f.eth_address()
        return {"ref": target}, (target,)

    cases = texts("payment_target", values, note=note) + shapes(
        "payment_target",
        [("iban_under_bank_account", bank), ("address_under_ref", neutral)],
        note=note,
    )
    return [
        Case(c.id, c.kind, c.value, c.fields, c.needles, c.note, borderline=True) for c in cases
    ]


# -- unsafe flags and the safety fields ---------------------------------------------------------

UNSAFE_FLAGS: dict[str, dict[str, object]] = {
    "execute_now": {"execute_now": True},
    "execute_now_camel_string": {"executeNow": "true"},
    "auto_execute": {"auto_execute": True},
    "auto_execute_camel_int": {"autoExecute": 1},
    "auto_execute_hyphen_yes": {"auto-execute": "yes"},
    "execute_immediately": {"execute_immediately": True},
    "direct_execution": {"direct_execution": True},
    "execution_object": {"execution": {"mode": "live"}},
    "execution_mode_live": {"execution_mode": "live"},
    "mode_live": {"mode": "live"},
    "trading_mode_live_upper": {"trading_mode": "LIVE"},
    "live_true": {"live": True},
    "live_trading_on": {"live_trading": "on"},
    "environment_production": {"environment": "production"},
    "env_prod": {"env": "prod"},
    "environment_upper": {"ENVIRONMENT": "Production"},
    "network_mainnet": {"network": "mainnet"},
    "chain_mainnet": {"chain": "ethereum-mainnet"},
    "network_object": {"network": {"name": "mainnet", "chain_id": 1}},
    "send_transaction": {"send_transaction": True},
    "send_transaction_camel": {"sendTransaction": True},
    "submit_transaction": {"submit_transaction": True},
    "sign_and_send": {"sign_and_send": True},
    "broadcast": {"broadcast": True},
    "broadcast_enabled": {"broadcast_enabled": True},
    "broadcast_enabled_list": {"broadcast_enabled": [True]},
    "broadcast_enabled_object": {"broadcast_enabled": {"value": True}},
    "broadcast_enabled_string": {"broadcast_enabled": "true"},
    "broadcast_enabled_int": {"broadcast_enabled": 1},
    "dry_run_false": {"dry_run": False},
    "dry_run_camel_string": {"dryRun": "false"},
    "dry_run_required_false": {"dry_run_required": False},
    "simulate_false": {"simulate": False},
    "skip_simulation": {"skip_simulation": True},
    "raw_credentials_allowed": {"raw_credentials_allowed": True},
    "sensitive_signing_inputs_allowed": {"sensitive_signing_inputs_allowed": True},
    "production_true": {"production": True},
    "is_production_yes": {"is_production": "yes"},
}

SAFETY_FIELDS_UNSAFE: dict[str, object] = {
    "dry_run_only": False,
    "funds_moved": True,
    "broadcast_allowed": True,
    "private_key_required": True,
    "live_trading_enabled": True,
    "legal_review_required": False,
    "compliance_review_required": False,
}


def _flags() -> list[Case]:
    cases = [
        Case(f"unsafe_flag.{name}", "unsafe_flag", fields=fields)
        for name, fields in UNSAFE_FLAGS.items()
    ]
    for name, value in SAFETY_FIELDS_UNSAFE.items():
        cases.append(Case(f"safety_field.{name}", "safety_field", fields={name: value}))
        cases.append(
            Case(
                f"safety_field.{name}_as_string", "safety_field", fields={name: str(value).lower()}
            )
        )
    cases += [
        Case("safety_field.dry_run_only_zero", "safety_field", fields={"dry_run_only": 0}),
        Case(
            "safety_field.nested_object",
            "safety_field",
            fields={"safety": {"funds_moved": True, "broadcast_allowed": True}},
        ),
        Case("safety_field.all_seven", "safety_field", fields=dict(SAFETY_FIELDS_UNSAFE)),
    ]
    return cases


FORBIDDEN: tuple[Case, ...] = tuple(
    [
        *_provider_keys(),
        *_generic_tokens(),
        *_webhook_urls(),
        *_flow_memory_secrets(),
        *_bearer_and_session(),
        *_jwts(),
        *_pem_keys(),
        *_signing_keys(),
        *_mnemonics(),
        *_passwords_in_urls(),
        *_credential_text(),
        *_secret_field_names(),
        *_split_secrets(),
        *_encoded(),
        *_unicode_disguises(),
        *_keys_in_references(),
        *_value_transfer(),
        *_payment_targets(),
        *_flags(),
    ]
)
