"""MMER's auxiliary objectives, usable with any fusion: CTC, SupCon, AugCon.

``loss = multi-task loss + w_ctc * CTC + w_supcon * SupCon + w_aug *
AugCon`` (Ghosh et al., Interspeech 2023, all three at 0.1). Each term
has a rule for the batches where it is undefined, so that it never
becomes NaN or crashes: the term skips those utterances (or the batch),
and the skips are counted and logged with the epoch.

* **CTC** on characters from the audio encoder's frames
  (:class:`~speechbrain_mtmm.nnet.auxiliary_heads.AuxiliaryHeads` ``ctc``),
  with SpeechBrain's ``ctc_loss`` (``reduction="mean"``: per utterance,
  divided by its target length; MMER sums) and ``CTCTextEncoder`` over
  MMER's character set (blank, ``|`` between words, A-Z, apostrophe).
  Transcripts are normalised to that set (:func:`ctc_transcript`).
  Skipped: an utterance whose transcript has no character of the set
  (e.g. only ``[LAUGHTER]``), or whose target needs more frames than its
  audio has (length plus one blank between repeated characters).
* **SupCon**, the supervised contrastive loss of Khosla et al. (2020,
  ``L_out``) over the projected utterance vectors of a batch:
  L2-normalised, temperature 0.07, positives = the other utterances of
  the same class, the anchor itself left out of both the positives and
  the denominator. MMER's code differs: no normalisation, the anchor
  counted as its own positive and in its softmax, the temperature applied
  after the log-softmax (so it only scales the loss). Skipped: anchors
  whose class has no other member in the batch (all of them when every
  label is distinct).
* **AugCon** between an utterance and its augmented copy: InfoNCE over the
  batch (L2-normalised projections, temperature 0.07, both directions;
  MMER: one direction, no normalisation). MMER's copies are TTS
  re-syntheses and back-translations, which need models we cannot ship;
  here the audio copy comes from SpeechBrain's waveform augmentations
  (the recipe's ``augmentation``: speed, noise, frequency and chunk drop)
  and the transcript is kept. Skipped: batches of one utterance (no
  negative), and epochs whose audio is masked.

Written here: SpeechBrain has CTC and augmentation but no contrastive
losses.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import re

import torch
import torch.nn.functional as F
from speechbrain.dataio.encoder import CTCTextEncoder
from speechbrain.nnet.losses import ctc_loss

from speechbrain_mtmm.nnet.auxiliary_heads import CTC_CHARACTERS

# annotations in brackets ([LAUGHTER], <sil>, (breath), {noise}) are not
# speech
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)|\{[^}]*\}")


def ctc_transcript(text):
    """A transcript in the CTC character set.

    Annotations in brackets are removed, letters upper-cased, other
    characters dropped, words joined by ``|``.

    Arguments
    ---------
    text : str
        The transcript as written.

    Returns
    -------
    str
        Only characters of :data:`CTC_CHARACTERS` ("" when none is left).

    Example
    -------
    >>> ctc_transcript("I don't know... [LAUGHTER] Really?!")
    "I|DON'T|KNOW|REALLY"
    >>> ctc_transcript("[LAUGHTER]")
    ''
    """
    text = _ANNOTATION.sub(" ", text).upper()
    words = [
        "".join(c for c in word if c in CTC_CHARACTERS) for word in text.split()
    ]
    return "|".join(word for word in words if word)


def character_encoder():
    """SpeechBrain's ``CTCTextEncoder`` over :data:`CTC_CHARACTERS`, the
    blank at index 0.

    Returns
    -------
    speechbrain.dataio.encoder.CTCTextEncoder

    Example
    -------
    >>> encoder = character_encoder()
    >>> ids = encoder.encode_sequence_torch(list("HI|YOU"))
    >>> "".join(encoder.decode_ndim(ids.tolist())), encoder.get_blank_index()
    ('HI|YOU', 0)
    """
    encoder = CTCTextEncoder()
    encoder.update_from_iterable(CTC_CHARACTERS, sequence_input=False)
    encoder.insert_blank(index=0)
    encoder.expect_len(len(CTC_CHARACTERS) + 1)
    return encoder


def frames_needed(targets):
    """Frames a CTC alignment of each target needs: its length plus one
    blank between each pair of equal neighbours.

    Arguments
    ---------
    targets : list of torch.Tensor
        1-D character ids.

    Returns
    -------
    list of int

    Example
    -------
    >>> empty = torch.tensor([], dtype=torch.long)
    >>> frames_needed([torch.tensor([5, 5, 6]), empty])
    [4, 0]
    """
    return [
        len(t) + int((t[1:] == t[:-1]).sum()) if len(t) else 0 for t in targets
    ]


def ctc_term(log_probs, frame_lens, targets):
    """CTC over the utterances it is defined for.

    Arguments
    ---------
    log_probs : torch.Tensor
        ``(batch, frames, characters)`` log-probabilities.
    frame_lens : torch.Tensor
        Absolute numbers of valid frames ``(batch,)``.
    targets : list of torch.Tensor
        1-D character ids per utterance (may be empty).

    Returns
    -------
    loss : torch.Tensor or None
        SpeechBrain's ``ctc_loss`` (mean) over the kept utterances; None
        when none is kept.
    skipped : dict
        ``no_characters`` and ``too_short`` counts.
    """
    needed = frames_needed(targets)
    keep = [
        i
        for i, (n, frames) in enumerate(zip(needed, frame_lens.tolist()))
        if 0 < n <= frames
    ]
    skipped = {
        "no_characters": sum(len(t) == 0 for t in targets),
        "too_short": sum(
            0 < n > frames for n, frames in zip(needed, frame_lens.tolist())
        ),
    }
    if not keep:
        return None, skipped
    kept = [targets[i] for i in keep]
    longest = max(len(t) for t in kept)
    padded = torch.zeros(len(kept), longest, dtype=torch.long)
    for row, target in enumerate(kept):
        padded[row, : len(target)] = target
    target_lens = torch.tensor([len(t) / longest for t in kept])
    frames = log_probs.shape[1]
    input_lens = frame_lens[keep].float() / frames
    loss = ctc_loss(
        log_probs[keep],
        padded.to(log_probs.device),
        input_lens.to(log_probs.device),
        target_lens.to(log_probs.device),
        blank_index=0,
    )
    return loss, skipped


def supervised_contrastive_loss(projections, labels, temperature=0.07):
    """Supervised contrastive loss (Khosla et al. 2020, ``L_out``).

    ``-1/|A| sum_{i in A} 1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / t) /
    sum_{a != i} exp(z_i.z_a / t))`` with ``z`` the L2-normalised
    projections, ``P(i)`` the other members of ``i``'s class and ``A``
    the anchors that have one.

    Arguments
    ---------
    projections : torch.Tensor
        ``(batch, dim)``.
    labels : torch.Tensor
        Class indices ``(batch,)``.
    temperature : float
        Softmax temperature.

    Returns
    -------
    loss : torch.Tensor or None
        None when no anchor has a positive.
    skipped : int
        Anchors without a positive.

    Example
    -------
    >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    >>> loss, skipped = supervised_contrastive_loss(z, torch.tensor([0, 0, 1]))
    >>> round(loss.item(), 4), skipped
    (0.0, 1)
    >>> supervised_contrastive_loss(z, torch.tensor([-100, -100, 1]))
    (None, 3)
    """
    z = F.normalize(projections.float(), dim=-1)
    logits = z @ z.T / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    # an utterance without a class (label < 0: rated for the dimensions
    # only) is nobody's positive, not even of another one without a class
    classed = labels >= 0
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    positives &= classed[:, None] & classed[None, :]
    has_positive = positives.any(dim=1)
    skipped = int((~has_positive).sum())
    if not has_positive.any():
        return None, skipped
    log_prob = logits - torch.logsumexp(
        logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True
    )
    per_anchor = (log_prob * positives).sum(1) / positives.sum(1).clamp(min=1)
    return -per_anchor[has_positive].mean(), skipped


def augmentation_contrastive_loss(projections, augmented, temperature=0.07):
    """InfoNCE between each utterance and its augmented copy.

    The copy is the positive and the batch's other copies the negatives,
    in both directions (original -> copies and copies -> originals),
    L2-normalised.

    Arguments
    ---------
    projections : torch.Tensor
        ``(batch, dim)`` of the originals.
    augmented : torch.Tensor
        ``(batch, dim)`` of their copies, in the same order.
    temperature : float
        Softmax temperature.

    Returns
    -------
    torch.Tensor or None
        None for a batch of one (no negative).

    Example
    -------
    >>> z = torch.eye(3)
    >>> loss = augmentation_contrastive_loss(z, z, temperature=0.1)
    >>> loss.item() < 1e-3
    True
    """
    if len(projections) < 2:
        return None
    z = F.normalize(projections.float(), dim=-1)
    z_aug = F.normalize(augmented.float(), dim=-1)
    logits = z @ z_aug.T / temperature
    targets = torch.arange(len(z), device=z.device)
    return 0.5 * (
        F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)
    )


class AuxiliaryOptionsError(ValueError):
    """Auxiliary objectives that cannot run with the other settings."""


def check_auxiliary_options(w_ctc, w_aug, feature_cache, modalities):
    """Refuses weights the run cannot honour, in one line.

    Arguments
    ---------
    w_ctc, w_aug : float
        CTC and AugCon weights.
    feature_cache : bool
        The encoders' features are read from the cache.
    modalities : list of str
        The modalities the model reads.

    Raises
    ------
    AuxiliaryOptionsError
        CTC or AugCon without audio; AugCon with the feature cache.

    Example
    -------
    >>> check_auxiliary_options(0.1, 0.1, True, ["audio", "text"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.auxiliary_losses.AuxiliaryOptionsError: \
w_aug > 0 augments the waveforms, which the feature cache does not keep; set \
feature_cache: False (or w_aug: 0)
    """
    if (w_ctc > 0 or w_aug > 0) and "audio" not in modalities:
        raise AuxiliaryOptionsError(
            "w_ctc and w_aug need the audio modality; set them to 0 for a "
            "text-only model"
        )
    if w_aug > 0 and feature_cache:
        raise AuxiliaryOptionsError(
            "w_aug > 0 augments the waveforms, which the feature cache does "
            "not keep; set feature_cache: False (or w_aug: 0)"
        )


def auxiliary_modules(heads):
    """The ``Brain`` modules of the auxiliary heads: none when every
    objective is off (DDP refuses a module without parameters).

    Arguments
    ---------
    heads : speechbrain_mtmm.nnet.auxiliary_heads.AuxiliaryHeads
        The heads.

    Returns
    -------
    dict
        ``{"auxiliary": heads}`` or ``{}``.
    """
    return {"auxiliary": heads} if any(True for _ in heads.parameters()) else {}


class AuxiliaryObjectives:
    """The weighted auxiliary terms of a training batch, and the epoch's
    running means and skip counts (for the training log).

    Arguments
    ---------
    w_ctc, w_supcon, w_aug : float
        Weights (0: the term is not computed).
    temperature : float
        Of both contrastive losses (MMER: 0.07).

    Example
    -------
    >>> from speechbrain_mtmm.nnet.auxiliary_heads import AuxiliaryHeads
    >>> heads = AuxiliaryHeads(8, 6, supcon=True)
    >>> objectives = AuxiliaryObjectives(w_supcon=0.1)
    >>> objectives.start_epoch()
    >>> labels = torch.tensor([0, 0, 1, 2])
    >>> terms = objectives(heads(torch.randn(4, 6)), labels)
    >>> sorted(terms), objectives.epoch_summary()["supcon_skipped"]
    (['loss', 'supcon'], 2)
    """

    TERMS = ("ctc", "supcon", "augcon")

    def __init__(self, w_ctc=0.0, w_supcon=0.0, w_aug=0.0, temperature=0.07):
        self.weights = dict(
            zip(self.TERMS, map(float, (w_ctc, w_supcon, w_aug)))
        )
        if min(self.weights.values()) < 0:
            raise AuxiliaryOptionsError("auxiliary weights must be >= 0")
        self.temperature = float(temperature)
        self.start_epoch()

    def active(self, term=None):
        """Whether ``term`` (ctc, supcon, augcon; None: any) is computed."""
        if term is None:
            return any(w > 0 for w in self.weights.values())
        return self.weights[term] > 0

    def start_epoch(self):
        """Resets the epoch's sums and skip counts."""
        self.sums = dict.fromkeys(self.TERMS, 0.0)
        self.batches = dict.fromkeys(self.TERMS, 0)
        self.skipped = dict.fromkeys(self.TERMS, 0)

    def epoch_summary(self):
        """Per active term: the mean over the batches that had it, and how
        many utterances (anchors for SupCon) it skipped.

        Returns
        -------
        dict
            ``<term>`` and ``<term>_skipped``.
        """
        summary = {}
        for term in self.TERMS:
            if self.active(term):
                if self.batches[term]:
                    summary[term] = self.sums[term] / self.batches[term]
                summary[f"{term}_skipped"] = self.skipped[term]
        return summary

    def __call__(self, projections, labels, frame_lens=None, characters=None):
        """The active terms of one batch.

        Arguments
        ---------
        projections : dict
            What the heads' ``forward``
            (:class:`~speechbrain_mtmm.nnet.auxiliary_heads.AuxiliaryHeads`)
            returned for the batch (``ctc`` missing when the audio was
            masked, ``augcon`` when there was no augmented copy).
        labels : torch.Tensor
            Class indices ``(batch,)``.
        frame_lens : torch.Tensor, optional
            Relative lengths of the audio frames (CTC).
        characters : speechbrain.dataio.batch.PaddedData, optional
            The batch's ``chars`` (CTC targets).

        Returns
        -------
        dict
            ``loss`` (the weighted sum, plus an exact 0 that depends on
            every head's parameters, so that a skipped term leaves no
            parameter unused) and each term that was computed.
        """
        out = {"loss": projections["unused"]}
        for key, value in projections.items():
            if key != "unused":  # skipped terms still use their heads
                out["loss"] = out["loss"] + 0.0 * value.sum()
        if self.active("ctc"):
            loss, skipped = None, len(labels)
            if "ctc" in projections and characters is not None:
                logits = projections["ctc"]
                log_probs = logits.float().log_softmax(-1)
                frames = torch.round(frame_lens * logits.shape[1]).long()
                loss, skips = ctc_term(
                    log_probs, frames.cpu(), batch_targets(characters)
                )
                skipped = sum(skips.values())
            self._add("ctc", loss, skipped, out)
        if self.active("supcon"):
            loss, skipped = supervised_contrastive_loss(
                projections["supcon"], labels, self.temperature
            )
            self._add("supcon", loss, skipped, out)
        if self.active("augcon"):
            loss = None
            if "augcon" in projections:
                loss = augmentation_contrastive_loss(
                    projections["augcon"],
                    projections["augcon_aug"],
                    self.temperature,
                )
            skipped = 0 if loss is not None else len(labels)
            self._add("augcon", loss, skipped, out)
        return out

    def _add(self, term, loss, skipped, out):
        self.skipped[term] += int(skipped)
        if loss is None:
            return
        out[term] = loss
        out["loss"] = out["loss"] + self.weights[term] * loss
        self.sums[term] += float(loss.detach())
        self.batches[term] += 1


def character_targets(text, encoder):
    """The CTC target of a transcript (empty when no character is left).

    Arguments
    ---------
    text : str
        The transcript as written.
    encoder : speechbrain.dataio.encoder.CTCTextEncoder
        From :func:`character_encoder`.

    Returns
    -------
    torch.LongTensor
        1-D character ids.

    Example
    -------
    >>> character_targets("[LAUGHTER]", character_encoder()).shape
    torch.Size([0])
    """
    chars = list(ctc_transcript(text))
    if not chars:
        return torch.zeros(0, dtype=torch.long)
    return encoder.encode_sequence_torch(chars)


def batch_targets(padded):
    """Per-utterance targets from a padded batch item.

    Arguments
    ---------
    padded : speechbrain.dataio.batch.PaddedData
        ``(data, relative lengths)`` of the character ids.

    Returns
    -------
    list of torch.Tensor
    """
    data, lens = padded
    width = data.shape[1]
    return [
        row[: int(round(float(rel) * width))].cpu()
        for row, rel in zip(data, lens)
    ]
