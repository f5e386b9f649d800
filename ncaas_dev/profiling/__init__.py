"""Running an analysis outside a job, under the same container contract: measured once
(``run``: ``ncaas-dev profile``) or by hand (``shell``: ``ncaas-dev shell``)."""
