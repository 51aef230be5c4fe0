"""The built wheel, used as a user would: run from outside the checkout, in a fresh environment."""

import pathlib
import sys
import tempfile

import sktextae

package = pathlib.Path(sktextae.__file__).resolve().parent
assert "site-packages" in package.parts, f"sktextae was imported from {package}, not from the installed wheel"
texts = ["the cat sat on the mat", "a dog ran in the park", "stocks fell on monday", "the market rose"] * 5
model = sktextae.TextAutoencoder(latent_dim=4, architecture="gru", embedding_dim=8, hidden_dim=8, max_epochs=1,
                                 validation_fraction=0, patience=None, vocab_size=300, random_state=0).fit(texts)
with tempfile.TemporaryDirectory() as folder:
    loaded = sktextae.load(model.save(pathlib.Path(folder) / "model"))
    assert (loaded.transform(texts) == model.transform(texts)).all()
    print(f"sktextae {sktextae.__version__} from {package}: fit, save and load work;", loaded.inverse_transform(
        loaded.transform(texts[:1]))[0][:40], file=sys.stderr)
