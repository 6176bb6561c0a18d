"""jsii's floor: the smallest CDK app worth synthesizing (one S3 bucket), for bench/synth_bench.py."""

from aws_cdk import App, Stack, aws_s3 as s3

app = App()
s3.Bucket(Stack(app, "OneBucket"), "Bucket")
app.synth()
