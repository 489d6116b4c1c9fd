"""Settings: one pydantic-settings class in groups by job (`settings.retrieval.candidates`), read from
flat `RAG_*` environment variables (RAG_CANDIDATES)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from rag.datafiles import DataDir
from rag.errors import SettingsError
from rag.setting_groups import (
    GROUP_OF,
    GROUPS,
    AnswerSettings,
    ModelSettings,
    RetrievalSettings,
    ServerSettings,
    StoreSettings,
    directory,
)

BUNDLED_CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
# Values never repeated in messages (they may hold tokens).
_SECRET = {"api_key", "chroma_headers", "server_token"}
_JSON_FIELDS = {"chroma_headers": 'a JSON object, e.g. \'{"Authorization": "Bearer TOKEN"}\''}


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag-abstracts", appauthor=False))


class _Variables(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")


@functools.cache
def _variables() -> type[BaseSettings]:
    """A flat settings class with a field for every RAG_<NAME>, to read the environment with: pydantic-settings
    reads a nested model from RAG_<GROUP> (JSON, or RAG_<GROUP>__<NAME> with a nested delimiter), never from
    its fields' own names. Only the types matter here (a dict is read as JSON); `Settings` validates the values."""
    models: list[type[BaseModel]] = [Settings, *GROUPS.values()]
    fields: dict[str, Any] = {
        name: (info.annotation, None)
        for model in models
        for name, info in model.model_fields.items()
        if name not in GROUPS
    }
    return create_model("Variables", __base__=_Variables, **fields)


class Settings(BaseSettings):
    """Everything a user can configure, in groups by job (`settings.retrieval.candidates`). Each setting
    can be set as `RAG_<NAME>` (RAG_CANDIDATES), or given flat as `Settings(candidates=5)` or
    `settings.set("candidates", 5)`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", validate_assignment=True)

    home: Path = Field(default_factory=default_home, description="Data dir: index, models, chats.")
    models: ModelSettings = Field(default_factory=ModelSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    if TYPE_CHECKING:
        # Type checkers take the fields for the keywords; `_regroup` takes flat ones (`Settings(candidates=5)`).
        def __init__(self, **values: Any) -> None: ...

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flat names from both (a keyword wins over its variable), regrouped by `_regroup` once merged; no
        # .env file or secrets dir is configured, so the other two sources read nothing.
        return init_settings, EnvSettingsSource(_variables())

    @model_validator(mode="before")
    @classmethod
    def _regroup(cls, data: Any) -> Any:
        """`{"candidates": 5}` -> `{"retrieval": {"candidates": 5}}`. A group given as a dict wins over a flat
        name for the same setting; one given as a model is taken as it is. (Also called on every assignment,
        with the groups as they are: nothing to regroup then.)"""
        if not isinstance(data, dict) or not GROUP_OF.keys() & data.keys():
            return data
        out = {name: value for name, value in data.items() if name not in GROUP_OF}
        for name, value in data.items():
            if (group := GROUP_OF.get(name)) is not None:
                given = out.get(group)
                if isinstance(given, BaseModel):
                    continue
                out[group] = {name: value, **given} if isinstance(given, dict) else {name: value}
        return out

    @field_validator("home", mode="before")
    @classmethod
    def _is_a_directory(cls, value: object, info: ValidationInfo) -> object:
        return directory(value, info.field_name or "")

    @classmethod
    def load(cls, **values: Any) -> Settings:
        """The settings from `values` (flat names) and the environment; a bad value is a `SettingsError`
        naming its variable."""
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = []
            for e in exc.errors():
                if not e["loc"]:
                    problems.append(e["msg"])
                    continue
                # ("retrieval", "candidates") -> RAG_CANDIDATES; ("store", "chroma_headers", "Authorization") too
                field = str(e["loc"][1] if e["loc"][0] in GROUPS and len(e["loc"]) > 1 else e["loc"][0])
                name = f"RAG_{field.upper()}" + ("" if field in _SECRET else f"={e.get('input')!s}")
                hint = f"; give {_JSON_FIELDS[field]}" if field in _JSON_FIELDS else ""
                problems.append(f"{name}: {e['msg'].removeprefix('Value error, ')}{hint}")
            raise SettingsError(f"invalid setting {'; '.join(problems)}") from exc
        except SourceError as exc:  # a complex value (a JSON field) that is not JSON
            match = re.search(r'field "(\w+)"', str(exc))
            field = match.group(1) if match else "?"
            expected = _JSON_FIELDS.get(field, "JSON")
            raise SettingsError(f"invalid setting RAG_{field.upper()}: not valid JSON; give {expected}") from exc

    def set(self, field: str, value: object, given_as: str | None = None) -> None:
        """Set one setting by its flat name (`"base_url"`) given other than by its variable (`--base-url`),
        checked as the variable would be; a bad value is a `SettingsError` naming the option (or the
        variable), and the old value stays."""
        owner: BaseModel = getattr(self, GROUP_OF[field]) if field in GROUP_OF else self
        try:
            setattr(owner, field, value)
        except ValidationError as exc:
            why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            shown = "" if field in _SECRET else f"={value}"
            raise SettingsError(f"invalid {given_as or f'setting RAG_{field.upper()}'}{shown}: {why}") from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy that shares no group with this one (a shallow copy would: a setting changed on either
        would change on both)."""
        if flat := GROUP_OF.keys() & (update or {}).keys():
            raise TypeError(f"model_copy takes groups, not settings ({', '.join(sorted(flat))}); use set() on the copy")
        return super().model_copy(update=update, deep=True)

    @property
    def data_dir(self) -> DataDir:
        """The files of the data dir (`home`)."""
        return DataDir(self.home)

    @property
    def index_dir(self) -> Path:
        return self.data_dir.index.dir

    @property
    def models_dir(self) -> Path:
        return self.models.models_home or self.data_dir.models
