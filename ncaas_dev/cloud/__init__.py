"""The cloud path: baking AMIs (``bake``), the deployed stack (``deploy``), the EC2 launcher's
instances (``ec2``), and what all three agree on (``layout``)."""
