"""The cloud path: baking AMIs, the EC2 launcher's instances, the deployed stack."""
