"""Render the kustomizations under ``k8s/``: with ``kubectl kustomize`` when it is
installed, else with :func:`render_in_python`, a small stand-in that knows exactly
the kustomize features ``k8s/`` uses (resources, components, configMapGenerator,
generatorOptions, namespace, images, inline JSON6902 patches that append).

The stand-in leaves ConfigMap names without the hash suffix kustomize adds; when
kubectl is there the tests check that both agree once that suffix is set aside.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})


def kubectl() -> str | None:
    """The kubectl command, if installed."""
    return shutil.which("kubectl")


def render(directory: Path) -> list[Document]:
    """The documents ``kubectl kustomize directory`` prints (or the stand-in's)."""
    command = kubectl()
    if command is None:
        return render_in_python(directory)
    done = subprocess.run(
        [command, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_in_python(directory: Path) -> list[Document]:
    """Apply ``directory``'s kustomization.yaml the way kustomize does."""
    spec = _kustomization(directory)
    documents: list[Document] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        documents += render_in_python(path) if path.is_dir() else _load(path)
    documents += _generated(directory, spec)
    for component in spec.get("components", []):
        documents += _component(directory / component)
    return _transform(documents, spec)


def _component(directory: Path) -> list[Document]:
    spec = _kustomization(directory)
    if spec.get("kind") != "Component":
        raise ValueError(f"{directory} is not a kustomize Component")
    return _transform(_generated(directory, spec), spec)


def _kustomization(directory: Path) -> Document:
    loaded = yaml.safe_load((directory / "kustomization.yaml").read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{directory}/kustomization.yaml is not a mapping")
    return loaded


def _load(path: Path) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _generated(directory: Path, spec: Document) -> list[Document]:
    options = spec.get("generatorOptions", {})
    maps = []
    for generator in spec.get("configMapGenerator", []):
        data = {}
        for item in generator.get("files", []):
            key, _, source = item.rpartition("=") if "=" in item else ("", "", item)
            data[key or Path(source).name] = (directory / source).read_text()
        metadata: Document = {"name": generator["name"]}
        if "namespace" in generator:
            metadata["namespace"] = generator["namespace"]
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": data,
            }
        )
    return maps


def _transform(documents: list[Document], spec: Document) -> list[Document]:
    result = copy.deepcopy(documents)
    namespace = spec.get("namespace")
    for doc in result:
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for image in spec.get("images", []):
            _set_image(doc, image)
    for patch in spec.get("patches", []):
        for doc in result:
            if _targets(doc, patch["target"]):
                _apply_json6902(doc, yaml.safe_load(patch["patch"]))
    return result


def _set_image(doc: Document, image: Document) -> None:
    template = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in template.get("containers", []):
        if container["image"].split(":")[0] == image["name"]:
            container["image"] = f"{image['newName']}:{image['newTag']}"


def _targets(doc: Document, target: Document) -> bool:
    return doc["kind"] == target.get("kind", doc["kind"]) and doc["metadata"][
        "name"
    ] == target.get("name", doc["metadata"]["name"])


def _apply_json6902(doc: Document, operations: list[Document]) -> None:
    for operation in operations:
        if operation["op"] != "add" or not operation["path"].endswith("/-"):
            raise ValueError(f"the stand-in cannot apply {operation}")
        node: Any = doc
        for part in operation["path"].strip("/").split("/")[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(copy.deepcopy(operation["value"]))
