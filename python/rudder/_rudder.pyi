# The Rust extension's types (python/src/*.rs). Kept in step with it by
# python/tests/test_types.py, which compares every name, parameter and context key
# here (`Context`: what a hook's keywords may be) with the compiled module's.
from os import PathLike
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from typing_extensions import TypedDict, Unpack

_Path = Union[str, PathLike[str]]
Decision = Dict[str, Any]

__version__: str
library_version: str

class Context(TypedDict, total=False):
    """The context keys a hook takes (any subset), as the book's Policy API names them."""

    epoch: int
    step: int
    steps_per_epoch: int
    batch_size: int
    accumulation: int
    epochs: int
    dataset_size: int
    lr: Optional[float]
    momentum: Optional[float]
    weight_decay: Optional[float]
    base_lr: Optional[float]
    train_loss: Optional[float]
    train_acc: Optional[float]
    val_loss: Optional[float]
    val_acc: Optional[float]
    val_rmse: Optional[float]
    val_mae: Optional[float]
    val_r2: Optional[float]
    optimizer: str
    base_batch_size: int
    resumed: bool

class PolicyLoadError(ValueError):
    kind: str
    file: Optional[str]
    line: int
    column: int
    message: str

class Policies:
    def __init__(
        self,
        names: Union[str, Sequence[str]],
        params: Optional[Mapping[str, Any]] = None,
        watch: bool = True,
        path: Optional[Sequence[_Path]] = None,
        rescale: str = "linear",
        messages: Optional[Callable[[str], Any]] = None,
    ) -> None: ...
    def call(self, hook: str, **kwargs: Any) -> Decision: ...
    def on_train_start(self, **context: Unpack[Context]) -> Decision: ...
    def on_epoch_start(self, **context: Unpack[Context]) -> Decision: ...
    def on_step(self, **context: Unpack[Context]) -> Decision: ...
    def on_epoch_end(self, **context: Unpack[Context]) -> Decision: ...
    def on_train_end(self, **context: Unpack[Context]) -> Decision: ...
    @property
    def events(self) -> List[Dict[str, Any]]: ...
    def record_event(self, kind: str, **fields: Any) -> None: ...
    @property
    def should_stop(self) -> bool: ...
    @property
    def settings(self) -> Dict[str, Any]: ...
    def provenance(self) -> List[Dict[str, Any]]: ...
    def state(self) -> Dict[str, Any]: ...
    def load_state(self, saved: Any) -> List[str]: ...
    def reload(self) -> Decision: ...
    @property
    def edit_seen(self) -> bool: ...
    @property
    def watching(self) -> Optional[str]: ...
    @property
    def reload_pending(self) -> bool: ...
    def describe(self) -> List[Dict[str, Any]]: ...

def embedded() -> List[str]: ...
def policy_list(path: Optional[Sequence[_Path]] = None) -> List[str]: ...
def policy_doc(name: str, path: Optional[Sequence[_Path]] = None) -> str: ...
def policy_check(names: Sequence[str], params: Sequence[str] = ...,
                 path: Optional[Sequence[_Path]] = None) -> Tuple[List[str], Optional[str]]: ...
def policy_test(root: _Path = ..., which: Sequence[str] = ..., path: Optional[Sequence[_Path]] = None,
                stdlib: bool = False) -> Tuple[int, int, List[str]]: ...
def plugin_run(action: str, source: Optional[str] = None, tag: Optional[str] = None, rev: Optional[str] = None,
               branch: Optional[str] = None, version: Optional[str] = None, name: Optional[str] = None,
               locked: bool = False, offline: bool = False,
               names: Sequence[str] = ...) -> Tuple[List[str], int, Optional[str]]: ...
