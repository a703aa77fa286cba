"""Pushing an MLM head (config, safetensors, card) to the Hub in one commit, like every artefact of gradiend-hf."""

from __future__ import annotations

import tempfile
from typing import Any

from ..errors import GradiendError
from ..hub import WEIGHT_PATTERNS, HubCommit, upload_folder


def push_mlm_head(head, repo_id: str, **commit: Any):
    """Pushes an [`MLMHeadModel`] to the Hub; it loads back with `MLMHeadModel.from_pretrained(repo_id)`.

    The head is saved into a temporary folder first (the files `save_pretrained` writes, the card rendered for
    `repo_id`), which is uploaded in one commit; weight files of an earlier push are replaced in the same commit.

    Args:
        head ([`MLMHeadModel`]): The head.
        repo_id (`str`): The model repo (`"user/name"`); created when missing.
        commit: [`HubCommit`] fields (`revision`, `private`, `token`, `commit_message`, …).

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        [`GradiendError`]: for an unknown commit argument.
    """
    try:
        options = HubCommit(**commit)
    except TypeError as error:
        raise GradiendError(f"{error}; the commit arguments are {', '.join(vars(HubCommit()))}.") from None
    location = head.config._name_or_path
    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as folder:
        head.save_pretrained(folder, model_id=repo_id)
        head.config._name_or_path = location  # the push does not move the head
        return upload_folder(
            folder, repo_id, options, default_message="Upload MLM head", delete_patterns=WEIGHT_PATTERNS
        )
