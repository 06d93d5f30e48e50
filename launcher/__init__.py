"""The top of the house: the `smartcity` command, `smartcity up` and the servers it manages."""
