"""Contract checks a component's own tests call, one module per kind.

Plugin authors import them from :mod:`slimkit.plugins` (``from slimkit.plugins import
check_backbone``). Each check builds the component at tiny sizes, exercises the contract
of its kind and raises :class:`~slimkit.checks._common.ContractError` (an
``AssertionError``, so pytest shows it as a failed test) naming what broke and how to fix
it; on success it returns a small report dict (what was checked, sizes).

* :mod:`.backbone`: ``check_backbone``;   * :mod:`.fusion`: ``check_fusion``;
* :mod:`.encoder`: ``check_encoder``;     * :mod:`.prompt`: ``check_prompt``;
* :mod:`.teacher`: ``check_teacher``;     * :mod:`.student`: ``check_student``;
* :mod:`.dataset`: ``check_dataset``;
* :mod:`._common`: ``ContractError`` and the tiny inputs (``tiny_batch``,
  ``tiny_dataset``, ``teacher_jobs``) the checks share.

torch is imported inside the checks only (``slimkit.runtime.setup_torch``).
"""
