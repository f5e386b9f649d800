"""The EC2 path: the API as launcher and stand-in see it, user-data, and the offline stand-in."""
