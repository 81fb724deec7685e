"""Prepares a running moto_server as a private S3 bucket (test-only).

    moto_setup.py ENDPOINT BUCKET SEED_JSON

Creates an IAM user with an s3:* policy and an access key, creates BUCKET,
uploads the seed objects ({"key": "content", ...}), then switches moto's
authentication on (POST /moto-api/reset-auth with body 0): from then on
unsigned or wrongly signed requests get 403. Prints the credentials as JSON.
"""
import json
import sys
import urllib.request

import boto3

endpoint, bucket, seed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
anon = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup")

iam = boto3.client("iam", **anon)
iam.create_user(UserName="tollgate")
iam.put_user_policy(
    UserName="tollgate",
    PolicyName="s3-all",
    PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }),
)
key = iam.create_access_key(UserName="tollgate")["AccessKey"]

s3 = boto3.client("s3", **anon)
s3.create_bucket(Bucket=bucket)
for name, content in seed.items():
    s3.put_object(Bucket=bucket, Key=name, Body=content.encode(), ContentType="text/plain")

req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0",
                             headers={"Content-Type": "text/plain"}, method="POST")
urllib.request.urlopen(req).read()
print(json.dumps({"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}))
