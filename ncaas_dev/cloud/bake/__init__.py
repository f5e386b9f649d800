"""Baking an analysis into an AMI: the key, the payload, Packer, the proof, the record."""
