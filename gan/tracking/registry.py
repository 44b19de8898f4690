"""The model registry: each evaluated generator a version, the alias @best on the best one; and reading them back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import UserError, one_line
from gan.tracking.drain import connect
from gan.tracking.store import retry, store_lock, tracking_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

WEIGHTS_ARTIFACT = "weights/generator.pt"  # in every run: G's state dict, which loads with weights_only=True
BEST = "best"  # the registry alias of each model's best version


def register_generator(run_id: str, name: str, primary: str, scores: dict[str, float],
                       tags: dict[str, str]) -> str:
    """Register the run's logged generator as a new version of `name`, with `scores` and `tags` on the version,
    and move the alias `best` to the version with the lowest `primary` score (FID, reverse KL). Only numbers
    of the same key (metric and sample count) on the same data are ranked: a version scored otherwise than
    the alias holder leaves the alias where it is. Returns a line saying what happened.
    """
    client = connect()  # before any import of mlflow (see connect)
    import mlflow

    experiment = retry(lambda: client.get_run(run_id)).info.experiment_id
    logged = retry(lambda: client.search_logged_models(
        [experiment], filter_string=f"source_run_id = '{run_id}' AND name = 'generator'"))
    if not logged:
        raise UserError(f"the generator of run {run_id} is not in {tracking_uri()} yet; after "
                        f"`python -m gan.tracking flush` sends it, rerun `dvc repro -f evaluate`")
    model_id = max(logged, key=lambda m: m.creation_timestamp).model_id  # a resumed run's last one
    version_tags = {**tags, **{k: repr(float(v)) for k, v in scores.items()}, "primary_metric": primary}
    # models:/<model_id>, not runs:/…/generator (MLflow 3 then warns that the run has no such artifacts);
    # the fluent call also links the version on the logged model, which the run page reads
    version = mlflow.register_model(f"models:/{model_id}", name, tags=version_tags).version
    if not retry(lambda: client.get_registered_model(name)).description:
        retry(lambda: client.update_registered_model(name, description="Generators trained by the gan pipeline; "
                                                     "the alias @best is the best version by " + primary))
    line = f"registered as models:/{name}/{version} ({primary} {scores[primary]:.6g})"
    # two evaluates finishing together: the later one ranks with both versions in view
    with store_lock(tracking_uri()):
        return f"{line}; {_move_best(client, name, primary, tags.get('data.sha256'))}"


def _move_best(client: MlflowClient, name: str, primary: str, data: str | None) -> str:
    """Point @best at the lowest `primary` score among versions scored like the holder; what it did, in words."""
    from mlflow.exceptions import MlflowException

    def group_of(v: Any) -> tuple[str | None, str | None]:
        return v.tags.get("primary_metric"), v.tags.get("data.sha256")

    try:
        holder = retry(lambda: client.get_model_version_by_alias(name, BEST))
    except MlflowException:
        holder = None
    if holder is not None and group_of(holder) != (primary, data):  # another metric, sample count or data
        return (f"@{BEST} stays version {holder.version}, scored by {group_of(holder)[0]} on data "
                f"{str(group_of(holder)[1])[:12]}, which this version's numbers cannot be compared with")
    rivals = [(float(v.tags[primary]), int(v.version))
              for v in retry(lambda: client.search_model_versions(f"name = '{name}'"))
              if group_of(v) == (primary, data) and primary in v.tags]
    best_score, best = min(rivals)
    retry(lambda: client.set_registered_model_alias(name, BEST, str(best)))
    return f"models:/{name}@{BEST} is version {best} ({primary} {best_score:.6g})"


def fetch_generator(uri: str, dest: Path) -> tuple[Path, str]:
    """The weights file behind a model URI, downloaded into `dest`, and the run it came from.

    runs:/RUN_ID[/generator], models:/NAME/VERSION and models:/NAME@ALIAS are read from the store
    (MLFLOW_TRACKING_URI or ./mlflow.db); what is fetched is the run's weights/generator.pt, a state
    dict that loads with weights_only=True, never the pickled MLflow model.
    """
    store = tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise UserError(f"{uri}: there is no MLflow store at {store}; run the pipeline here first, or set "
                        f"MLFLOW_TRACKING_URI to the store that holds the model")
    client = connect()
    from mlflow.exceptions import MlflowException

    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/")[0]
    elif uri.startswith("models:/"):
        run_id = _model_version(client, uri, store).run_id
    else:
        raise UserError(f"{uri}: not a model URI; use runs:/RUN_ID, models:/NAME/VERSION, models:/NAME@ALIAS "
                        f"or the path of a generator file (models/generator.pt)")
    try:
        path = client.download_artifacts(run_id, WEIGHTS_ARTIFACT, str(dest))
    except MlflowException as exc:
        raise UserError(f"{uri}: run {run_id} in {store} has no {WEIGHTS_ARTIFACT} "
                        f"({one_line(exc, 160)}); pass its DVC output models/generator.pt instead") from None
    return Path(path), run_id


def _model_version(client: MlflowClient, uri: str, store: str) -> Any:
    """The registered version that models:/NAME/VERSION or models:/NAME@ALIAS names; a UserError listing what exists."""
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/")
    name, alias = ref.split("@", 1) if "@" in ref else (ref.split("/")[0], None)
    try:
        model = retry(lambda: client.get_registered_model(name))
    except MlflowException:
        known = [m.name for m in retry(lambda: client.search_registered_models())]
        raise UserError(f"{uri}: no registered model {name!r} in {store}; registered: "
                        f"{', '.join(known) or 'none (evaluate registers gan-<data>-<arch> after a run)'}") from None
    if alias is not None:
        try:
            return retry(lambda: client.get_model_version_by_alias(name, alias))
        except MlflowException:
            aliases = ", ".join(f"@{a}" for a in (model.aliases or {})) or "none"
            raise UserError(f"{uri}: model {name!r} has no alias @{alias}; its aliases: {aliases}") from None
    version = ref.split("/", 1)[1] if "/" in ref else ""
    try:
        return retry(lambda: client.get_model_version(name, version))
    except MlflowException:
        latest = max((int(v.version) for v in retry(lambda: client.search_model_versions(f"name = '{name}'"))),
                     default=0)
        raise UserError(f"{uri}: model {name!r} has no version {version!r}; its versions are 1..{latest}, "
                        f"or use models:/{name}@{BEST}") from None
