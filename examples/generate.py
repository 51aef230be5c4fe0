"""Generate text with a variational ``TextAutoencoder``: prior samples, interpolation, beam search.
================================================================================================

A variational autoencoder (``variational=True``) learns a Gaussian posterior per text, pulled
towards a standard normal prior by a KL term, so that latent vectors drawn from N(0, I) decode to
plausible texts. This example trains a small variational GRU on the short first lines of the
standard library's docstrings (no download: they are read from this Python's own installation),
then prints

- texts decoded from the prior with ``sample``: greedy, then sampled with a temperature and top-k;
- the texts along the straight line between the latent vectors of two texts (``interpolate``);
- training texts decoded from their posterior means by greedy decoding and by beam search, with
  each output's log-probability under the model (beam search is never less probable than greedy);
- the KL divergence and the number of active latent units after the last epoch.

Run it with::

    python examples/generate.py

It takes a few minutes at most on 2 CPU cores.
"""

import time

import numpy as np
import torch

from sktextae import TextAutoencoder
from sktextae.datasets import load_stdlib_docstrings
from sktextae.decoding import decode_latent, sequence_log_prob


def main():
    if not torch.cuda.is_available():
        # A model this small gains nothing from more than one intra-op thread, and on a small or busy
        # machine OpenMP's threads spin against each other: on 2 shared cores this script took 10 min
        # with 2 threads and under a minute with 1.
        torch.set_num_threads(1)
    texts = [t for t in load_stdlib_docstrings().data if 3 <= len(t.split()) <= 8]
    np.random.default_rng(0).shuffle(texts)
    texts = texts[:600]

    # The KL weight rises from 0 to 1 over the first kl_annealing_epochs, and word_dropout="auto"
    # (0.25 for a variational model) hides decoder inputs: both make the decoder rely on the latent
    # vector. free_bits=0.5 lets each unit keep half a nat of information free of the KL penalty:
    # on so few texts the default 0.1 gives fluent samples but reconstructs little.
    ae = TextAutoencoder(latent_dim=32, architecture="gru", embedding_dim=64, hidden_dim=128, num_layers=1,
                         dropout=0.0, noise=0.0, variational=True, kl_annealing_epochs=8, free_bits=0.5, max_epochs=40,
                         batch_size=32, lr=3e-3, validation_fraction=0, patience=None, random_state=0)
    print(f"Training a variational GRU on {len(texts)} short docstrings ...")
    start = time.perf_counter()
    ae.fit(texts)
    print(f"Trained in {time.perf_counter() - start:.0f} s on {ae.device_}.")

    print("\nSamples from the prior N(0, I), greedy decoding:")
    for text in ae.sample(6, random_state=0):
        print(f"  {text}")
    print("\nSamples from the prior, sampled at temperature=0.7 among the top_k=20 tokens:")
    for text in ae.sample(6, strategy="sample", temperature=0.7, top_k=20, random_state=0):
        print(f"  {text}")

    text_a, text_b = texts[100], texts[200]
    print(f"\nInterpolation from {text_a!r} to {text_b!r} (n_steps=5):")
    for step, text in enumerate(ae.interpolate(text_a, text_b, n_steps=5)):
        print(f"  {step}: {text}")

    shown = texts[300:305]
    print("\nTexts decoded from their posterior means by greedy decoding and by beam search (beam_size=4),")
    print("with each output's log-probability under the model:")
    Z = ae.transform(shown)
    greedy, beam = ae.inverse_transform(Z), ae.inverse_transform(Z, strategy="beam", beam_size=4)
    greedy_scores, beam_scores = _log_probs(ae, Z)
    for text, g, g_score, b, b_score in zip(shown, greedy, greedy_scores, beam, beam_scores):
        print(f"  text:   {text}\n  greedy: {g}  ({g_score:.2f})\n  beam:   {b}  ({b_score:.2f})\n")

    last = ae.net_.history[-1]
    print(f"After epoch {last['epoch']}: KL {last['train_kl']:.2f} nats per text, "
          f"{last['active_units']} of {ae.latent_dim} latent units active.")


def _log_probs(ae, Z):
    """Log-probability under the model of the greedy and of the beam output for each latent vector."""
    module = ae.net_.module_.eval()
    latent = torch.from_numpy(Z).to(ae.net_.device)
    with torch.inference_mode():
        return [sequence_log_prob(module, latent, decode_latent(module, latent, max_length=ae.max_length,
                                                                 **options))
                for options in (dict(strategy="greedy"), dict(strategy="beam", beam_size=4))]


if __name__ == "__main__":
    main()
