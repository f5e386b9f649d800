"""The ways in: the `ncaas-dev` front end (standard library only) and the warm command server
it hands commands to."""
