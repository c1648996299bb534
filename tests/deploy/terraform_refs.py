"""A small resolver over deploy/terraform: every var., local., module., resource and data
reference in a module names something declared, and every module call matches its module.

Parsing is python-hcl2's; references are read from the expression text it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

REF = re.compile(r"(?<![\w.\-/])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?")
RESOURCE_REF = re.compile(r"(?<![\w.\-/])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")
META = {"__is_block__", "__comments__", "__inline_comments__"}


def _name(key: str) -> str:
    return key.strip('"')


def _blocks(doc: dict, kind: str) -> dict[str, dict]:
    out = {}
    for entry in doc.get(kind, []):
        for key, body in entry.items():
            if key not in META:
                out[_name(key)] = body
    return out


@dataclass
class Module:
    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    calls: dict[str, dict] = field(default_factory=dict)
    resources: set[str] = field(default_factory=set)
    data: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)

    @property
    def required(self) -> set[str]:
        return {name for name, body in self.variables.items() if "default" not in body}


def load_module(path: Path) -> Module:
    module = Module(path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as handle:
            doc = hcl2.load(handle)
        module.variables.update(_blocks(doc, "variable"))
        module.outputs.update(_blocks(doc, "output"))
        module.calls.update(_blocks(doc, "module"))
        for entry in doc.get("locals", []):
            module.locals.update(k for k in entry if k not in META)
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    target.update(f"{_name(rtype)}.{_name(n)}" for n in named if n not in META)
        module.text.append(_code(tf.read_text()))
    return module


def _code(text: str) -> str:
    """The file without comments (a reference in a comment is not a reference)."""
    return "\n".join(line.split(" #", 1)[0] for line in text.splitlines() if not line.lstrip().startswith("#"))


def problems(root: Path) -> list[str]:
    """Every unresolved reference under ``root`` (a directory of Terraform modules)."""
    modules = {p: load_module(p) for p in sorted({tf.parent.resolve() for tf in root.rglob("*.tf")})}
    found = []
    for module in modules.values():
        found += _unresolved(module, modules)
        found += _bad_calls(module, modules)
    return found


def _unresolved(module: Module, modules: dict[Path, Module]) -> list[str]:
    where = module.path.name
    out = []
    for text in module.text:
        for kind, name, attr in REF.findall(text):
            if kind == "var" and name not in module.variables:
                out.append(f"{where}: var.{name} is not declared")
            elif kind == "local" and name not in module.locals:
                out.append(f"{where}: local.{name} is not declared")
            elif kind == "data" and f"{name}.{attr}" not in module.data:
                out.append(f"{where}: data.{name}.{attr} is not declared")
            elif kind == "module":
                out += _module_output(module, modules, name, attr)
        out += [f"{where}: {rtype}.{name} is not declared" for rtype, name in RESOURCE_REF.findall(text)
                if f"{rtype}.{name}" not in module.resources]
    return out


def _module_output(module: Module, modules: dict[Path, Module], name: str, attr: str) -> list[str]:
    if name not in module.calls:
        return [f"{module.path.name}: module.{name} is not called"]
    child = modules[_child_path(module, name)]
    return [] if attr in child.outputs else [f"{module.path.name}: module.{name}.{attr} is not an output"]


def _child_path(module: Module, name: str) -> Path:
    return (module.path / _name(module.calls[name]["source"])).resolve()


def _bad_calls(module: Module, modules: dict[Path, Module]) -> list[str]:
    out = []
    for name, body in module.calls.items():
        child = modules.get(_child_path(module, name))
        if child is None:
            out.append(f"{module.path.name}: module {name} source {body['source']} has no .tf files")
            continue
        given = {k for k in body if k not in META and k not in ("source", "providers", "depends_on")}
        out += [f"{module.path.name}: module {name} passes undeclared {k}" for k in sorted(given - set(child.variables))]
        out += [f"{module.path.name}: module {name} misses required {k}" for k in sorted(child.required - given)]
    return out


TEMPLATE_CALL = re.compile(r'templatefile\("\$\{path\.module\}/([^"]+)",\s*\{(.*?)\}\)', re.S)
TEMPLATE_EXPR = re.compile(r"(?<!\$)\$\{([^}]*)\}")
IDENT = re.compile(r'"[^"]*"|([A-Za-z_]\w*)(\s*\()?')


def template_problems(module_dir: Path) -> list[str]:
    """Each templatefile() call passes exactly the variables its template uses."""
    out = []
    for call in TEMPLATE_CALL.finditer((module_dir / "main.tf").read_text()):
        given = set(re.findall(r"^\s*(\w+)\s*=", call.group(2), re.M))
        used = {name for expr in TEMPLATE_EXPR.findall((module_dir / call.group(1)).read_text())
                for name, paren in IDENT.findall(expr) if name and not paren}
        out += [f"{module_dir.name}/{call.group(1)}: uses {n}, not passed" for n in sorted(used - given)]
        out += [f"{module_dir.name}/{call.group(1)}: {n} is passed but unused" for n in sorted(given - used)]
    return out
