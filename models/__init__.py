"""Built-in presets (TOML). Installed as the package ``dip_cli.models`` so they ship in the wheel."""
