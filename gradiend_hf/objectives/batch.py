"""[`ObjectiveBatch`]: the sequences the base model reads for a group of rows, and which of their logits score which
token of which word.

A row has one or more *words* (slots): slot 0 is the factual word, slot 1 the alternative word of a training row; a
scoring batch may give a row many words. A word is one or more target tokens. The batch holds

- **sequences** `(N, L)`: what the model reads. A row has as many as its words need: a masked LM one per distinct
  token count of its words (a k-token word is k consecutive mask tokens), a causal LM one per continuation that no
  other of its continuations contains (a single-token word is read after the prefix alone). Rows whose words agree
  need one sequence, so single-token rows are exactly one sequence each, as before. A seq2seq LM's sequence is a
  pair: the encoder input (the sentence with the blank as its mask or sentinel token) and the decoder input (the
  decoder's prefix, continued by a word's tokens but its last, as for a causal LM).
- **reads** `(U,)`: the distinct `(sequence, position)` pairs whose logits are needed (decoder positions for a
  seq2seq LM).
- **targets** `(T,)`: one per target token: the read that predicts it, its token id, its row and its slot.

All sequences of a batch go through the model in ONE forward pass; a word's log-probability is the sum of its
tokens' log-probabilities at their reads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ObjectiveBatch:
    """Tokenized rows, ready for the base model (see the module docstring for the layout).

    Args:
        input_ids (`torch.LongTensor` of shape `(sequences, length)`): Token ids, padded.
        attention_mask (`torch.LongTensor` of shape `(sequences, length)`): 1 for real tokens.
        read_sequences (`torch.LongTensor` of shape `(reads,)`): Sequence of each read.
        read_positions (`torch.LongTensor` of shape `(reads,)`): Position of each read; its logits predict a token.
        target_reads (`torch.LongTensor` of shape `(targets,)`): The read that predicts each target token.
        target_ids (`torch.LongTensor` of shape `(targets,)`): Each target token.
        target_rows (`torch.LongTensor` of shape `(targets,)`): The row of each target token.
        target_slots (`torch.LongTensor` of shape `(targets,)`): The word (slot) of its row each target token spells.
        sequence_rows (`torch.LongTensor` of shape `(sequences,)`): The row each sequence belongs to.
        num_rows (`int`), num_slots (`int`): Rows, and the most words a row has.
        position_ids (`torch.LongTensor`, *optional*): Explicit positions (causal LMs, so padding side is irrelevant).
        decoder_input_ids (`torch.LongTensor` of shape `(sequences, decoder_length)`, *optional*): The decoder's
            input of each sequence (seq2seq LMs), padded on the right; the reads are positions in it.
        decoder_attention_mask (`torch.LongTensor` of shape `(sequences, decoder_length)`, *optional*): 1 for real
            decoder tokens.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    read_sequences: torch.Tensor
    read_positions: torch.Tensor
    target_reads: torch.Tensor
    target_ids: torch.Tensor
    target_rows: torch.Tensor
    target_slots: torch.Tensor
    sequence_rows: torch.Tensor
    num_rows: int
    num_slots: int
    position_ids: torch.Tensor | None = None
    decoder_input_ids: torch.Tensor | None = None
    decoder_attention_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.num_rows

    def _replace(self, **changes) -> ObjectiveBatch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ObjectiveBatch(**(values | changes))

    def to(self, device: torch.device | str) -> ObjectiveBatch:
        return self._replace(
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            }
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.position_ids is not None:
            inputs["position_ids"] = self.position_ids
        if self.decoder_input_ids is not None:
            inputs["decoder_input_ids"] = self.decoder_input_ids
            inputs["decoder_attention_mask"] = self.decoder_attention_mask
        return inputs

    def word_log_probs(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Log-probability of every word, shape `(rows, slots)`, from the log-probs at the reads (`(reads, vocab)`):
        the sum of its tokens' log-probs; `-inf` for a slot the row does not have."""
        device = log_probs.device
        tokens = log_probs[self.target_reads.to(device), self.target_ids.to(device)]
        index = (self.target_rows * self.num_slots + self.target_slots).to(device)
        size = self.num_rows * self.num_slots
        words = tokens.new_zeros(size).index_add(0, index, tokens)
        present = torch.zeros(size, dtype=torch.long, device=device).index_add(0, index, torch.ones_like(index))
        return words.masked_fill(present == 0, float("-inf")).view(self.num_rows, self.num_slots)

    def token_counts(self) -> torch.Tensor:
        """Target tokens of each word, shape `(rows, slots)` (0 for a slot the row does not have)."""
        flat = torch.zeros(self.num_rows * self.num_slots, dtype=torch.long, device=self.target_ids.device)
        flat.index_add_(0, self.target_rows * self.num_slots + self.target_slots, torch.ones_like(self.target_ids))
        return flat.view(self.num_rows, self.num_slots)

    def select(self, index: int | slice | torch.Tensor | list[int]) -> ObjectiveBatch:
        """Rows `index` of the batch with their sequences, reads and targets (padding kept)."""
        device = self.input_ids.device
        rows = torch.arange(self.num_rows, device=device)[slice(index, index + 1) if isinstance(index, int) else index]
        row_map = torch.full((self.num_rows,), -1, dtype=torch.long, device=device)
        row_map[rows] = torch.arange(len(rows), device=device)
        keep_sequences = (row_map[self.sequence_rows] >= 0).nonzero().squeeze(-1)
        sequence_map = torch.full((len(self.input_ids),), -1, dtype=torch.long, device=device)
        sequence_map[keep_sequences] = torch.arange(len(keep_sequences), device=device)
        keep_reads = (sequence_map[self.read_sequences] >= 0).nonzero().squeeze(-1)
        read_map = torch.full((len(self.read_sequences),), -1, dtype=torch.long, device=device)
        read_map[keep_reads] = torch.arange(len(keep_reads), device=device)
        keep_targets = (row_map[self.target_rows] >= 0).nonzero().squeeze(-1)
        return self._replace(
            input_ids=self.input_ids[keep_sequences],
            attention_mask=self.attention_mask[keep_sequences],
            position_ids=None if self.position_ids is None else self.position_ids[keep_sequences],
            decoder_input_ids=None if self.decoder_input_ids is None else self.decoder_input_ids[keep_sequences],
            decoder_attention_mask=(
                None if self.decoder_attention_mask is None else self.decoder_attention_mask[keep_sequences]
            ),
            read_sequences=sequence_map[self.read_sequences[keep_reads]],
            read_positions=self.read_positions[keep_reads],
            target_reads=read_map[self.target_reads[keep_targets]],
            target_ids=self.target_ids[keep_targets],
            target_rows=row_map[self.target_rows[keep_targets]],
            target_slots=self.target_slots[keep_targets],
            sequence_rows=row_map[self.sequence_rows[keep_sequences]],
            num_rows=len(rows),
        )

    def row_lengths(self) -> list[int]:
        """Real tokens of each row's longest sequence (encoder input; a seq2seq row counts its decoder input too)."""
        lengths = self.attention_mask.sum(-1)
        if self.decoder_attention_mask is not None:
            lengths = lengths + self.decoder_attention_mask.sum(-1)
        longest = torch.zeros(self.num_rows, dtype=lengths.dtype, device=lengths.device)
        longest.scatter_reduce_(0, self.sequence_rows, lengths, reduce="amax")
        return longest.tolist()

    def trimmed(self) -> ObjectiveBatch:
        """The same batch without the columns that are padding in every sequence.

        Trailing padding columns always go; leading ones (left padding) only where the batch has explicit position
        ids, since a model that numbers positions by column would otherwise read the real tokens at other positions.
        """
        real = self.attention_mask.any(0).nonzero().squeeze(-1)
        if not len(real):
            return self
        first = int(real[0]) if self.position_ids is not None else 0
        stop = int(real[-1]) + 1
        changes = {
            "input_ids": self.input_ids[:, first:stop],
            "attention_mask": self.attention_mask[:, first:stop],
            "position_ids": None if self.position_ids is None else self.position_ids[:, first:stop],
        }
        if self.decoder_input_ids is None:
            changes["read_positions"] = self.read_positions - first
        else:
            # The reads are decoder positions; the decoder inputs are padded on the right.
            decoder_stop = int(self.decoder_attention_mask.any(0).nonzero().max()) + 1
            changes["decoder_input_ids"] = self.decoder_input_ids[:, :decoder_stop]
            changes["decoder_attention_mask"] = self.decoder_attention_mask[:, :decoder_stop]
        return self._replace(**changes)


class BatchBuilder:
    """Collects the sequences and targets of rows, then pads them into an [`ObjectiveBatch`].

    Positions given to [`add_target`] are positions in the unpadded sequence; [`build`] shifts them by the padding.
    """

    def __init__(self):
        self.sequences: list[list[int]] = []
        self.decoder_sequences: list[list[int]] = []
        self.sequence_rows: list[int] = []
        self.reads: dict[tuple[int, int], int] = {}
        self.targets: list[tuple[int, int, int, int]] = []  # (read, token, row, slot)
        self.num_rows = 0
        self.num_slots = 0

    def add_sequence(self, ids: list[int], row: int, decoder_ids: list[int] | None = None) -> int:
        """Adds a sequence of `row` (with its decoder input for a seq2seq LM: then every sequence has one); returns
        its index."""
        if decoder_ids is not None:
            self.decoder_sequences.append(list(decoder_ids))
        self.sequences.append(list(ids))
        self.sequence_rows.append(row)
        self.num_rows = max(self.num_rows, row + 1)
        return len(self.sequences) - 1

    def add_word(self, row: int, slot: int, sequence: int, first_position: int, tokens: list[int]) -> None:
        """Target tokens of one word: token `i` is predicted by the logits at `first_position + i` of `sequence`."""
        for offset, token in enumerate(tokens):
            read = self.reads.setdefault((sequence, first_position + offset), len(self.reads))
            self.targets.append((read, int(token), row, slot))
        self.num_rows = max(self.num_rows, row + 1)
        self.num_slots = max(self.num_slots, slot + 1)

    def add_continuations(self, row: int, words: list[list[int]], context_length: int, new_sequence) -> None:
        """Teacher-forced words after a shared context: slot `j` spells `words[j]`, its first token read at the last
        context position (`context_length - 1`), its i-th at its (i-1)-th token.

        A word whose continuation begins another's reads that one's sequence, so a row of single-token words is one
        sequence, the context alone.

        Args:
            row (`int`): The row.
            words (`list[list[int]]`): The target tokens of each slot.
            context_length (`int`): Tokens of the context every continuation starts with.
            new_sequence (`Callable[[list[int]], int]`): Adds the sequence that reads the context followed by the
                given tokens and returns its index.
        """
        continuations: list[tuple[list[int], int]] = []
        for slot in sorted(range(len(words)), key=lambda j: -len(words[j])):
            needed = words[slot][:-1]
            sequence = next((index for seen, index in continuations if seen[: len(needed)] == needed), None)
            if sequence is None:
                sequence = new_sequence(needed)
                continuations.append((needed, sequence))
            self.add_word(row, slot, sequence, context_length - 1, words[slot])

    def build(self, pad_id: int, padding_side: str) -> tuple[ObjectiveBatch, list[int]]:
        """The padded batch (without position ids) and the padding shift of each sequence (of the decoder inputs,
        which are padded on the right, when there are any)."""
        ids, mask, shifts = _pad(self.sequences, pad_id, padding_side)
        decoder_ids = decoder_mask = None
        if self.decoder_sequences:
            # The reads are decoder positions; a causal decoder padded on the right keeps them where they are.
            decoder_ids, decoder_mask, shifts = _pad(self.decoder_sequences, pad_id, "right")
        reads = sorted(self.reads.items(), key=lambda item: item[1])
        read_sequences = torch.tensor([sequence for (sequence, _), _ in reads], dtype=torch.long)
        read_positions = torch.tensor([position + shifts[sequence] for (sequence, position), _ in reads])
        targets = torch.tensor(self.targets, dtype=torch.long).reshape(-1, 4)
        batch = ObjectiveBatch(
            input_ids=ids,
            attention_mask=mask,
            read_sequences=read_sequences,
            read_positions=read_positions.long(),
            target_reads=targets[:, 0].contiguous(),
            target_ids=targets[:, 1].contiguous(),
            target_rows=targets[:, 2].contiguous(),
            target_slots=targets[:, 3].contiguous(),
            sequence_rows=torch.tensor(self.sequence_rows, dtype=torch.long),
            num_rows=self.num_rows,
            num_slots=self.num_slots,
            decoder_input_ids=decoder_ids,
            decoder_attention_mask=decoder_mask,
        )
        return batch, shifts


def _pad(sequences: list[list[int]], pad_id: int, padding_side: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Token ids and attention mask of `sequences` padded to one length, and each sequence's shift."""
    length = max(len(s) for s in sequences)
    shifts = [length - len(s) if padding_side == "left" else 0 for s in sequences]
    # Padded as Python lists and turned into tensors once: a tensor per row costs more than the padding.
    ids, mask = [], []
    for sequence, shift in zip(sequences, shifts):
        tail = length - shift - len(sequence)
        ids.append([pad_id] * shift + list(sequence) + [pad_id] * tail)
        mask.append([0] * shift + [1] * len(sequence) + [0] * tail)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long), shifts
