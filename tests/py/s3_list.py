"""Lists a private bucket on moto with botocore, signed (test-only).

    s3_list.py ENDPOINT BUCKET PREFIX ACCESS_KEY SECRET_KEY

Prints a JSON list of {"key": ..., "body": ...} for every object whose key
starts with PREFIX: the keys exactly as the server stored them.
"""
import json
import sys

import boto3

endpoint, bucket, prefix, access, secret = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=access, aws_secret_access_key=secret)
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        out.append({"key": obj["Key"], "body": body.decode("utf-8", "replace")})
print(json.dumps(out))
