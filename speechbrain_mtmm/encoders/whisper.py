"""Whisper's encoder as an audio encoder: 30 s log-mel windows, 50 frames/s.

Whisper (Radford et al. 2023) encodes fixed 30 s windows of an 80- or
128-bin log-mel spectrogram (3000 mel frames, 10 ms apart) into 1500
frames (20 ms apart); it has no attention mask and is trained on windows
padded with silence. :class:`WhisperAudioEncoder` pads each utterance to
whole 30 s windows, encodes every window, concatenates the windows' frames
and keeps those of the real audio: ``ceil(samples / 320)`` at 16 kHz, i.e.
50 per second (:func:`whisper_frames`), the exact lengths that
``output_lens`` reports. Audio longer than 30 s is cut into consecutive
30 s windows, each encoded as Whisper encodes a clip of its own (its
log-mel and its dynamic-range floor computed on that window alone).

The log-mel is that of ``WhisperFeatureExtractor`` (same mel filters, FFT
size, hop, ``log10``, floor at the window's maximum minus 8, ``(x + 4) /
4``), written again in torch so that it runs batched on the model's device
and inside the model's graph: the extractor itself takes and returns NumPy
arrays (its torch path converts back to NumPy on the CPU), so it cannot
sit inside ``forward`` or an ONNX graph. The mel filters are the
extractor's own. ``torch.stft`` exports to ONNX's STFT operator, so an
exported audio graph takes the waveform, as for the other encoders, and
computes the log-mel itself. The extractor's ``dither`` (0 in every
released checkpoint) is not applied: the features are deterministic.

Only the encoder is loaded: :class:`WhisperEncoderOnly` reads the
encoder's weights from any Whisper checkpoint
(``WhisperForConditionalGeneration``, ``WhisperModel`` or
``WhisperForAudioClassification``, hub id or folder) and skips the rest,
silently (transformers' ``WhisperForAudioClassification`` does the same
but adds a random classification head and reports every skipped decoder
weight). SpeechBrain's ``Whisper`` lobe
(``speechbrain.integrations.huggingface.whisper``) is not reused: it trims
audio to 30 s, takes the log-mel's maximum over the whole batch (so an
utterance's features depend on its batch mates), has no layer choice, no
lengths and only a boolean freeze, and loads the decoder (and a tokenizer)
to delete it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from speechbrain.utils.logger import get_logger
from transformers import AutoConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import (
    WhisperEncoder,
    WhisperPreTrainedModel,
)

from speechbrain_mtmm.encoders.base import EncoderError, lens_to_mask
from speechbrain_mtmm.encoders.huggingface import _HFEncoder

logger = get_logger(__name__)

#: ``model_type`` of the configs this encoder takes
WHISPER_MODEL_TYPE = "whisper"


def is_whisper(source, save_path=None):
    """True when ``source`` is a Whisper checkpoint (by its config).

    Arguments
    ---------
    source : str
        Hub id or local folder.
    save_path : str, optional
        HF cache folder for hub downloads.

    Returns
    -------
    bool
        False also when the config cannot be read (the encoder that is
        built next then says why).

    Example
    -------
    >>> from speechbrain_mtmm.testing.tiny_models import build_tiny_hubert
    >>> is_whisper(build_tiny_hubert(getfixture("tmpdir") / "h"))
    False
    >>> is_whisper(getfixture("tmpdir") / "nothing-here")
    False
    """
    folder = Path(str(source)).expanduser()
    if folder.is_dir():
        try:
            text = (folder / "config.json").read_text(encoding="utf-8")
            return json.loads(text).get("model_type") == WHISPER_MODEL_TYPE
        except (OSError, ValueError, AttributeError):
            return False
    try:
        config = AutoConfig.from_pretrained(str(source), cache_dir=save_path)
    except (OSError, ValueError):
        return False
    return getattr(config, "model_type", None) == WHISPER_MODEL_TYPE


def whisper_frames(samples, samples_per_frame=320):
    """Frames of the real audio: ``ceil(samples / samples_per_frame)``.

    Whisper's encoder makes one frame of every two mel frames of 160
    samples (16 kHz): 50 frames per second. A frame is kept when it starts
    inside the audio.

    Arguments
    ---------
    samples : torch.Tensor or int
        Valid samples of each utterance.
    samples_per_frame : int
        Hop of the mel frames times the encoder's stride.

    Returns
    -------
    torch.Tensor or int
        Frames, at least 1.

    Example
    -------
    >>> whisper_frames(16000), whisper_frames(16001), whisper_frames(1)
    (50, 51, 1)
    >>> whisper_frames(torch.tensor([0, 320, 321])).tolist()
    [1, 1, 2]
    """
    frames = (samples + samples_per_frame - 1) // samples_per_frame
    if isinstance(frames, torch.Tensor):
        return frames.clamp(min=1)
    return max(1, int(frames))


class WhisperEncoderOnly(WhisperPreTrainedModel):
    """The encoder of a Whisper checkpoint, nothing else.

    Loads with ``from_pretrained`` from any Whisper checkpoint: the
    ``model.`` prefix of ``WhisperForConditionalGeneration`` is stripped by
    transformers (``base_model_prefix``) and the weights of the decoder,
    the output projection and any classification head are skipped.

    Arguments
    ---------
    config : transformers.WhisperConfig
        The checkpoint's config.

    Example
    -------
    >>> from transformers import WhisperConfig
    >>> config = WhisperConfig(d_model=8, encoder_layers=1,
    ...     encoder_attention_heads=2, encoder_ffn_dim=16)
    >>> sorted({k.split(".")[0] for k in
    ...         WhisperEncoderOnly(config).state_dict()})
    ['encoder']
    """

    _keys_to_ignore_on_load_unexpected = [
        r"decoder\.",
        r"proj_out\.",
        r"projector\.",
        r"classifier\.",
        r"layer_weights",
    ]

    def __init__(self, config):
        super().__init__(config)
        self.encoder = WhisperEncoder(config)
        self.post_init()

    def forward(self, input_features, **kwargs):
        """The encoder's outputs (``WhisperEncoder.forward``).

        Arguments
        ---------
        input_features : torch.Tensor
            ``(batch, mel bins, 3000)`` log-mel windows.
        **kwargs
            Passed to the encoder (``output_hidden_states``).

        Returns
        -------
        transformers.modeling_outputs.BaseModelOutput
        """
        return self.encoder(input_features, **kwargs)


class WhisperAudioEncoder(_HFEncoder):
    """The encoder of any Whisper checkpoint, on waveforms.

    See the module's docstring for the windowing and the log-mel. The
    output has ``ceil(samples / 320)`` frames for the longest waveform of
    the batch (16 kHz); each utterance's padding is zeroed before its
    log-mel, so its frames do not depend on its batch mates (to float
    rounding).

    Arguments
    ---------
    source : str
        HF hub id (e.g. "openai/whisper-large-v3") or local folder.
    save_path : str, optional
        HF cache folder for hub downloads (None: default HF cache).
    freeze : str
        "paper": the convolutional front end (``conv1``, ``conv2``) frozen,
        transformer trainable; "frozen": everything frozen; "trainable":
        everything trainable. The sinusoidal position table is never
        trained (as in transformers).
    pretrained : bool
        Load the pretrained weights (False: build from the config; the
        weights then come from a checkpoint).
    sample_rate : int
        Rate of the waveforms; must be the feature extractor's.
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``revision``).

    Example
    -------
    >>> from speechbrain_mtmm.testing.tiny_models import (
    ...     build_tiny_whisper_encoder)
    >>> folder = build_tiny_whisper_encoder(getfixture("tmpdir") / "w")
    >>> encoder = WhisperAudioEncoder(folder, freeze="paper")
    >>> encoder.modality, encoder.output_size, encoder.num_layers
    ('audio', 16, 2)
    >>> wav = torch.randn(2, 16000)
    >>> encoder(wav, torch.tensor([1.0, 0.5])).shape  # 50 frames/s
    torch.Size([2, 50, 16])
    >>> encoder.output_lens(torch.tensor([1.0, 0.5]), 16000, 50).tolist()
    [1.0, 0.5]
    >>> encoder.hidden_states(wav, None, "all").shape
    torch.Size([2, 50, 3, 16])
    """

    modality = "audio"

    def __init__(
        self,
        source,
        save_path=None,
        freeze="paper",
        pretrained=True,
        sample_rate=16000,
        **kwargs,
    ):
        super().__init__(source, save_path, pretrained, **kwargs)
        try:
            self.load_feature_extractor(source, cache_dir=save_path)
        except OSError:
            logger.warning(
                f"No feature-extractor config in {source}: Whisper's "
                f"defaults with {self.config.num_mel_bins} mel bins."
            )
            self.feature_extractor = WhisperFeatureExtractor(
                feature_size=self.config.num_mel_bins
            )
        extractor = self.feature_extractor
        self.sample_rate = int(extractor.sampling_rate)
        if int(sample_rate) != self.sample_rate:
            raise EncoderError(
                f"{source}: Whisper takes {self.sample_rate} Hz audio, the "
                f"model's sample_rate is {sample_rate}; set sample_rate: "
                f"{self.sample_rate}"
            )
        self.n_fft = int(extractor.n_fft)
        self.hop_length = int(extractor.hop_length)
        self.window_samples = int(extractor.n_samples)
        stride = self.model.conv1.stride[0] * self.model.conv2.stride[0]
        self.samples_per_frame = self.hop_length * stride
        self.window_frames = int(self.config.max_source_positions)
        mel_frames = self.window_samples // self.hop_length
        if (
            mel_frames != self.window_frames * stride
            or int(extractor.feature_size) != self.config.num_mel_bins
        ):
            raise EncoderError(
                f"{source}: the feature extractor ({extractor.feature_size} "
                f"mel bins, {mel_frames} frames per window) does not fit "
                f"the model ({self.config.num_mel_bins} mel bins, "
                f"{self.window_frames * stride} frames); its "
                "preprocessor_config.json must be the one of its config.json"
            )
        filters = torch.as_tensor(extractor.mel_filters, dtype=torch.float32)
        # (mel bins, frequencies); buffers that follow the model's device,
        # rebuilt from the extractor's config, not saved in checkpoints
        self.register_buffer(
            "mel_filters", filters.T.contiguous(), persistent=False
        )
        self.register_buffer(
            "stft_window", torch.hann_window(self.n_fft), persistent=False
        )
        self._init_freeze(freeze)

    def _from_pretrained(
        self, source, save_path, cache_dir, device=None, **kwargs
    ):
        """Loads the encoder alone (the decoder's weights are skipped).

        Arguments
        ---------
        source : str
            Hub id or local folder.
        save_path : str or None
            HF cache folder for hub downloads.
        cache_dir : str
            Unused (kept for the parent's signature).
        device : str, optional
            Device to move the model to.
        **kwargs
            Passed to ``from_pretrained``.
        """
        kwargs = {"attn_implementation": "sdpa", **kwargs}
        if self._pretrained:
            full = WhisperEncoderOnly.from_pretrained(
                source, config=self.config, cache_dir=save_path, **kwargs
            )
        else:  # weights come from a checkpoint
            full = WhisperEncoderOnly._from_config(self.config, **kwargs)
        self.model = full.encoder
        if device is not None:
            self.model.to(device)

    def _policy_frozen_modules(self):
        return [self.model.conv1, self.model.conv2]

    def _apply_freeze(self):
        super()._apply_freeze()
        # a fixed sinusoidal table, never trained (as in transformers)
        self.model.embed_positions.weight.requires_grad = False

    def frames_of_samples(self, samples):
        """Output frames of ``samples`` valid samples (see the base class).

        Arguments
        ---------
        samples : torch.Tensor
            ``(batch,)`` numbers of samples.

        Returns
        -------
        torch.Tensor
            ``(batch,)`` numbers of frames.
        """
        return whisper_frames(samples, self.samples_per_frame)

    def _preprocessing(self):
        return {
            "log_mel": "whisper-1: per 30 s window, floor at max - 8",
            "feature_size": int(self.feature_extractor.feature_size),
            "sampling_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "window_samples": self.window_samples,
            "frames": f"ceil(samples / {self.samples_per_frame})",
        }

    def log_mel(self, windows):
        """Whisper's log-mel spectrogram of a batch of 30 s windows.

        The formula of ``WhisperFeatureExtractor`` (its torch path), per
        window.

        Arguments
        ---------
        windows : torch.Tensor
            ``(n, window_samples)`` waveforms.

        Returns
        -------
        torch.Tensor
            ``(n, mel bins, window_samples // hop_length)``, float32.
        """
        device = windows.device.type
        if torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self.log_mel(windows)
        stft = torch.stft(
            windows.float(),
            self.n_fft,
            self.hop_length,
            window=self.stft_window,
            return_complex=True,
        )
        power = stft[..., :-1].abs() ** 2
        mel = torch.matmul(self.mel_filters, power)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        floor = log_spec.amax(dim=(1, 2), keepdim=True) - 8.0
        return (torch.maximum(log_spec, floor) + 4.0) / 4.0

    def _encode(self, wav, lens, layers):
        batch, samples = wav.shape
        mask = lens_to_mask(lens, samples, wav.device).expand(batch, -1)
        wav = wav.masked_fill(~mask, 0.0)
        size = self.window_samples
        count = (samples + size - 1) // size
        windows = F.pad(wav, (0, count * size - samples))
        windows = windows.reshape(batch * count, size)
        mel = self.log_mel(windows).to(self.model.conv1.weight.dtype)
        feats = self._run(layers, input_features=mel)
        feats = feats.reshape(
            batch, count * self.window_frames, *feats.shape[2:]
        )
        # the frames of the longest waveform (samples >= 1; no max(): a
        # graph's length stays symbolic)
        step = self.samples_per_frame
        # contiguous: a slice's batch stride would be symbolic in a graph
        # that takes these features as input (the ONNX head)
        return feats[:, : (samples + step - 1) // step].contiguous()
