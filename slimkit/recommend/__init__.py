"""Top-K items for one user, with the student's rationale beside them.

:func:`recommend` loads the trained recommender of a spec (the ``train`` stage output),
scores every item for a known user (or for a new user given by a short history, whose
rationale the fine-tuned student writes on the spot), drops items the user already has
unless asked, and returns the items with their title, score and the rationale step that
mentions them (fuzzy title match), where one does.
"""

from slimkit.recommend.core import RECENT_HISTORY, recommend
from slimkit.recommend.lookup import close_ids, item_indices, user_index
from slimkit.recommend.titles import mentioning_step, title_variants

__all__ = ["RECENT_HISTORY", "close_ids", "item_indices", "mentioning_step", "recommend",
           "title_variants", "user_index"]
