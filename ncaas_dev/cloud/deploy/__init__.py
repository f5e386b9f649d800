"""Deploying an analysis's stack: the CloudFormation template, the stack, the Lambda dispatcher."""
