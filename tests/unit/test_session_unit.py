from claude_e2b.sandbox.session import SandboxSpec, _network_opts


def test_no_network_options_by_default():
    """Without an allow list or rules the SDK's defaults stand."""
    assert _network_opts(SandboxSpec()) is None


def test_allow_list_denies_everything_else_and_rules_pass_through():
    """An allow list comes with deny-all; egress rules are handed to the SDK as they are."""
    rules = {"api.anthropic.com": [{"transform": {"headers": {"x-api-key": "k"}}}]}
    opts = _network_opts(SandboxSpec(allow_out=("pypi.org",), network_rules=rules))
    assert opts == {"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"], "rules": rules}
