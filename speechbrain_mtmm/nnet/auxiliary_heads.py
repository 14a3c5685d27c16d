"""The heads of MMER's auxiliary objectives, trained with the model and
left out of its export.

* ``ctc``: a linear layer from the audio encoder's frames to the CTC
  characters, after dropout (MMER: ``Linear(768, 32)`` on the last
  wav2vec2 layer);
* ``supcon``, ``augcon``: projection MLPs of the fused utterance vector
  (MMER: ``Linear(1536, 768) -> GELU -> Linear(768, 768)``) for the
  supervised and the augmentation contrastive losses.

A head whose objective is off is not built (no parameters, nothing in
the checkpoints). The losses are in
:mod:`speechbrain_mtmm.training.auxiliary_losses`.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch

#: MMER's CTC characters after the blank: word separator, A-Z, apostrophe
CTC_CHARACTERS = ["|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "'"]
N_CTC_OUTPUTS = len(CTC_CHARACTERS) + 1  # and the blank


class AuxiliaryHeads(torch.nn.Module):
    """CTC and projection heads of the auxiliary objectives.

    Arguments
    ---------
    audio_size : int
        Width of the audio encoder's frames.
    embedding_size : int
        Width of the fused utterance vector.
    n_characters : int
        CTC outputs, the blank included (default: :data:`CTC_CHARACTERS`
        and the blank).
    projection_size : int, optional
        Width of the projections (default: ``embedding_size // 2``).
    dropout : float
        Before the CTC layer.
    ctc, supcon, augcon : bool
        Which heads to build.

    Example
    -------
    >>> heads = AuxiliaryHeads(8, 6, n_characters=5, ctc=True, supcon=True)
    >>> heads.ctc(torch.randn(2, 7, 8)).shape
    torch.Size([2, 7, 5])
    >>> heads.supcon(torch.randn(2, 6)).shape
    torch.Size([2, 3])
    >>> heads.augcon is None
    True
    """

    def __init__(
        self,
        audio_size,
        embedding_size,
        n_characters=N_CTC_OUTPUTS,
        projection_size=None,
        dropout=0.1,
        ctc=False,
        supcon=False,
        augcon=False,
    ):
        super().__init__()
        size = projection_size or max(1, embedding_size // 2)

        def projection():
            """A two-layer projection head for a contrastive loss."""
            return torch.nn.Sequential(
                torch.nn.Linear(embedding_size, size),
                torch.nn.GELU(),
                torch.nn.Linear(size, size),
            )

        self.ctc = None
        if ctc:
            self.ctc = torch.nn.Sequential(
                torch.nn.Dropout(dropout),
                torch.nn.Linear(audio_size, n_characters),
            )
        self.supcon = projection() if supcon else None
        self.augcon = projection() if augcon else None

    def forward(self, embedding, frames=None, embedding_aug=None):
        """Every head's output, in one call (as DDP needs: it averages
        gradients only through ``forward``).

        Arguments
        ---------
        embedding : torch.Tensor
            Utterance vectors ``(batch, embedding_size)``.
        frames : torch.Tensor, optional
            Audio encoder frames ``(batch, time, audio_size)`` (None: the
            audio is masked; no CTC).
        embedding_aug : torch.Tensor, optional
            Utterance vectors of the augmented copies (None: no AugCon).

        Returns
        -------
        dict
            ``ctc`` (character logits), ``supcon``, ``augcon`` and
            ``augcon_aug`` (projections), each for a head that was built
            and had its input; ``unused``: a zero that depends on the
            parameters of the heads without input, so that every parameter
            takes part in the loss (DDP refuses unused ones).
        """
        out = {}
        unused = embedding.new_zeros(())
        if self.ctc is not None:
            if frames is not None:
                out["ctc"] = self.ctc(frames)
            else:
                unused = unused + _zero(self.ctc)
        if self.supcon is not None:
            out["supcon"] = self.supcon(embedding)
        if self.augcon is not None:
            if embedding_aug is not None:
                out["augcon"] = self.augcon(embedding)
                out["augcon_aug"] = self.augcon(embedding_aug)
            else:
                unused = unused + _zero(self.augcon)
        out["unused"] = unused
        return out

    @classmethod
    def for_system(cls, system, w_ctc=0.0, w_supcon=0.0, w_aug=0.0, **kwargs):
        """The heads a system needs for the given objective weights.

        Arguments
        ---------
        system : speechbrain_mtmm.system.MultimodalEmotionSystem
            Sizes its audio frames and utterance vector (not kept).
        w_ctc, w_supcon, w_aug : float
            Objective weights (a head is built where > 0).
        **kwargs
            ``n_characters``, ``projection_size``, ``dropout``.

        Returns
        -------
        AuxiliaryHeads
        """
        return cls(
            system.encoder("audio").output_size,
            system.model.fusion.output_size,
            ctc=w_ctc > 0,
            supcon=w_supcon > 0,
            augcon=w_aug > 0,
            **kwargs,
        )


def _zero(module):
    """0, computed from every parameter of ``module``."""
    return sum(p.sum() for p in module.parameters()) * 0.0
