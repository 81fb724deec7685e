"""Signs CDN links with the libraries backends use (test-only).

    cdn_sign.py cloudfront KEYPEM KEY_PAIR_ID URL EXPIRES [OPTIONS-JSON]
        botocore's CloudFrontSigner: a canned policy, or with any of
        {"resource", "ip", "not_before"} a custom policy from build_policy.
        RSA keys sign with SHA-1 (as botocore documents), EC keys with
        ECDSA-SHA1 (CloudFront's ECDSA keys); the signer is the callable
        botocore asks for, written with `cryptography`.
    cdn_sign.py edgeauth OPTIONS-JSON
        akamai-edgeauth: {"key", "acl" | "url", plus EdgeAuth's own
        keyword arguments}; prints the token.
    cdn_sign.py cloud_cdn URL KEY_NAME BASE64_KEY EXPIRES [URL_PREFIX]
        Google's published Cloud CDN signing algorithm (no package signs it):
        a signed URL, or with URL_PREFIX a URLPrefix-signed URL.
    cdn_sign.py cloud_cdn_cookie URL_PREFIX KEY_NAME BASE64_KEY EXPIRES
        The Cloud-CDN-Cookie value.
"""
import base64
import datetime
import hashlib
import hmac
import json
import sys
import urllib.parse

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def cloudfront(key_pem, key_pair_id, url, expires, options="{}"):
    opts = json.loads(options)
    with open(key_pem, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)

    def signer(message):
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())
        return key.sign(message, ec.ECDSA(hashes.SHA1()))

    cf = CloudFrontSigner(key_pair_id, signer)
    until = datetime.datetime.fromtimestamp(int(expires), tz=datetime.timezone.utc)
    if not opts:
        return cf.generate_presigned_url(url, date_less_than=until)
    not_before = opts.get("not_before")
    policy = cf.build_policy(
        opts.get("resource", url),
        until,
        date_greater_than=datetime.datetime.fromtimestamp(not_before, tz=datetime.timezone.utc) if not_before else None,
        ip_address=opts.get("ip"),
    )
    return cf.generate_presigned_url(url, policy=policy)


def edgeauth(options):
    from akamai.edgeauth import EdgeAuth

    opts = json.loads(options)
    acl, url = opts.pop("acl", None), opts.pop("url", None)
    ea = EdgeAuth(**opts)
    return ea.generate_acl_token(acl) if acl is not None else ea.generate_url_token(url)


def _sign(key_b64, text):
    key = base64.urlsafe_b64decode(key_b64)
    return base64.urlsafe_b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha1).digest()).decode("utf-8")


def cloud_cdn(url, key_name, key_b64, expires, url_prefix=None):
    # Google's sample: the URL (or a URLPrefix policy) with Expires and
    # KeyName appended, HMAC-SHA1, base64url with padding.
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    if url_prefix is None:
        to_sign = f"{url}{sep}Expires={expires}&KeyName={key_name}"
        return f"{to_sign}&Signature={_sign(key_b64, to_sign)}"
    encoded = base64.urlsafe_b64encode(url_prefix.encode("utf-8")).decode("utf-8")
    policy = f"URLPrefix={encoded}&Expires={expires}&KeyName={key_name}"
    return f"{url}{sep}{policy}&Signature={_sign(key_b64, policy)}"


def cloud_cdn_cookie(url_prefix, key_name, key_b64, expires):
    encoded = base64.urlsafe_b64encode(url_prefix.encode("utf-8")).decode("utf-8")
    policy = f"URLPrefix={encoded}:Expires={expires}:KeyName={key_name}"
    return f"{policy}:Signature={_sign(key_b64, policy)}"


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.stdout.write({"cloudfront": cloudfront, "edgeauth": edgeauth, "cloud_cdn": cloud_cdn,
                      "cloud_cdn_cookie": cloud_cdn_cookie}[command](*args))
