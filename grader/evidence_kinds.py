"""The evidence kinds a rubric's ``static`` item may ask for: a light module the rubric validates against and
:mod:`grader.checks.static` looks for."""

EVIDENCE = {
    "librosa_load": "audio loaded with librosa.load (or soundfile / torchaudio)",
    "librosa_mfcc": "MFCCs extracted with librosa.feature.mfcc (or torchaudio's MFCC)",
    "augmentation": "data augmentation: pitch shift, added noise, time shift or time stretch",
    "architecture": "a generative architecture: WaveNet (dilated causal convolutions, gated units), "
                    "GAN (generator and discriminator) or VAE (encoder, reparameterisation, decoder, KL)",
    "training_loop": "a training loop: an optimiser stepping on a loss (or Keras compile/fit)",
    "pesq_or_snr": "PESQ or SNR computed on audio",
}
"""Evidence kinds a rubric's static item may ask for, with what each means."""
