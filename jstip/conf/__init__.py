"""jstip's packaged Hydra configs (the YAML files of this folder) and the one way to compose a run config."""

from __future__ import annotations


def compose(config_name: str = "tiny", overrides: list[str] | None = None, config_dir: str | None = None):
    """The run config: a packaged (or ``config_dir``) YAML with Hydra ``key=value`` overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides or [])
    GlobalHydra.instance().clear()
    if config_dir:
        from pathlib import Path

        # The user's folder is the primary search path; the packaged configs stay reachable from its defaults lists.
        overrides.append("hydra.searchpath=[pkg://jstip.conf]")
        init = initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None)
    else:
        init = initialize_config_module(config_module="jstip.conf", version_base=None)
    with init:
        return hydra_compose(config_name=config_name, overrides=overrides)
