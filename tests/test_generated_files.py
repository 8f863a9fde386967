"""Files derived from the code equal what the code derives now (streamer/generated_files.py)."""

from entropylong_streamer import config_docs, generated_files
from entropylong_streamer.config import Config


def test_every_generated_file_is_up_to_date():
    assert generated_files.stale() == [], "run python -m entropylong_streamer.generated_files"


def test_the_configuration_page_describes_every_setting():
    page = config_docs.render()
    for name, field in Config.model_fields.items():
        section = config_docs._section(field)
        keys = [f"{name}.{k}" for k in section.model_fields] if section else [name]
        for key in keys:
            assert f"**`{key}`**" in page
        described = section.model_fields.values() if section else [field]
        assert all(f.description for f in described), f"a setting of {name} has no description (its docstring)"
    assert "`ELONG_VERIFY__EPSILON`" in page and "number >= 0, < 1" in page
