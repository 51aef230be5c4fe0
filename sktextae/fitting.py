"""Fitting an estimator: the checks of its parameters' combinations, the tokenizer, the network, the
frozen encoder's cache, the LSA start of a bag of words (``lsa_start``), the PCA start of a bottleneck,
the validation split, and resuming from a checkpoint. The estimators' ``fit`` and ``partial_fit`` validate their
input, then call ``fit_new`` or ``fit_more``, which set the fitted attributes.
"""

import copy
import dataclasses
from numbers import Integral

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from skorch.helper import predefined_split
from tokenizers import Tokenizer

from . import checkpoint as checkpoints
from . import data_parallel as distributed_job
from . import distill, heap, network
from . import pretrained as pretrained_models
from .batching import TokenDataset, corrupt
from .device import fork_rng_devices, is_cuda, resolve_device
from .inference import batched, encode_texts
from .lsa_start import start_bag_decoder, start_from_lsa
from .nn import ENCODERS, SCRATCH_DECODERS
from .nn.bottleneck import start_from
from .tokenization import train_tokenizer
from .vocabulary import Vocabulary

# The sizes a pretrained decoder takes from its checkpoint: they must stay at their defaults.
PRETRAINED_DECODER_SIZES = ("hidden_dim", "num_layers", "num_heads")
# The parameters a pretrained encoder decides itself: they must stay at their defaults.
TOKENIZER_PARAMS = ("tokenizer", "vocab_size", "lowercase")


def fit_new(estimator, texts, *, epochs, labels=None, n_outputs=None, task=None, class_weight=None,
            reconstruction_weight=1.0, pretrained=None, resumable=True):
    """Train a new network on ``texts``, and a new tokenizer unless one is given: by ``pretrained`` (a
    fitted TextAutoencoder, whose network is copied too) or by a pretrained encoder (``encoder=``).

    With ``n_outputs``, the network gets a supervised head (``task``) trained on ``labels``. With
    ``checkpoint_dir`` (and ``resumable``, which ``partial_fit`` turns off), every epoch is
    checkpointed there, and a checkpoint of the same fit found there is resumed.
    """
    shapes = pretrained if pretrained is not None else estimator  # whose parameters shape the network
    language_model = check_fit(estimator, shapes, len(texts))
    device = resolve_device(estimator.device)
    if estimator.data_parallel:
        device = distributed_job.join(device)
        distributed_job.check_same_texts(texts, labels)
    fit_checkpoints = None
    if resumable and estimator.checkpoint_dir is not None:
        fingerprint = checkpoints.fingerprint(estimator, texts, labels, device=device, pretrained=pretrained)
        if estimator.data_parallel and distributed_job.rank() != 0:  # rank 0 writes; this process follows
            fit_checkpoints = checkpoints.FollowerCheckpoints(
                estimator.checkpoint_dir, fingerprint,
                checkpoints.read_follower(estimator.checkpoint_dir, fingerprint, max_epochs=epochs,
                                          name=distributed_job.from_rank_0(None)))
        else:
            fit_checkpoints = checkpoints.FitCheckpoints(
                estimator.checkpoint_dir, fingerprint,
                checkpoints.read(estimator.checkpoint_dir, fingerprint, max_epochs=epochs))
            if estimator.data_parallel:  # the checkpoint every process resumes, read once rank 0 holds the folder
                resume = fit_checkpoints.resume
                distributed_job.from_rank_0(None if resume is None else resume.folder.name)
    try:
        vocabulary, max_length, sequences, n_truncated = _tokenize(estimator, texts, pretrained, language_model,
                                                                   fit_checkpoints)
        estimator.vocabulary_, estimator.tokenizer_ = vocabulary, vocabulary.tokenizer
        estimator.device_, estimator.n_truncated_, estimator.max_length_ = device, n_truncated, max_length
        if pretrained is None:
            estimator.bag_size_ = max(1, int(np.median([len(s) for s in sequences])))
            estimator.decode_length_ = _longest(sequences)
        else:
            estimator.bag_size_, estimator.decode_length_ = pretrained.bag_size_, pretrained.decode_length_
        spec = network.spec_for(shapes.get_params(deep=False), vocabulary=vocabulary, max_length=max_length,
                                dropout=estimator.dropout, freeze_encoder=estimator.freeze_encoder,
                                n_outputs=n_outputs)
        if pretrained is not None and network.spec_of(pretrained.net_).static_encoder:  # its student, copied
            spec = dataclasses.replace(spec, static_encoder=True, freeze_encoder=True,
                                       static_bigrams=network.spec_of(pretrained.net_).static_bigrams)
        estimator.net_ = network.build_net(spec, estimator.get_params(deep=False), device=device,
                                           vocabulary=vocabulary, decoder_tokens=vocabulary.decoder_tokens, task=task,
                                           class_weight=class_weight, reconstruction_weight=reconstruction_weight)
        if fit_checkpoints is None:
            rng = check_random_state(estimator.random_state)
        else:  # the random source of the fit that wrote the checkpoint, whatever random_state is
            rng = fit_checkpoints.fit_rng(estimator.random_state)
        if estimator.data_parallel:  # one validation split and batch order for the job: rank 0's
            rng = _rank_0_rng(rng)
        train(estimator, sequences, labels, epochs=epochs, rng=rng, pretrained=pretrained,
              fit_checkpoints=fit_checkpoints)
        if shapes.static_encoder and not spec.static_encoder:
            distill.replace_with_static(estimator, sequences, rng=rng,
                                        n_valid=n_validation(estimator.validation_fraction, len(sequences)))
    finally:
        if fit_checkpoints is not None:  # the folder's lock, at once, however the fit ended
            fit_checkpoints.release()
    return estimator


def fit_more(estimator, texts):
    """One more epoch on ``texts`` with the fitted tokenizer and network (``partial_fit``)."""
    if network.spec_of(estimator.net_).static_encoder:
        # The pretrained model is gone from the network (and maybe from this machine): only the training
        # parameters are checked, not the shapes that the static student already fixed.
        check_training(estimator, len(texts))
    else:
        check_fit(estimator, estimator, len(texts))
    rng = _partial_fit_rng(estimator)
    if estimator.data_parallel:
        distributed_job.join(estimator.device_)
        distributed_job.check_same_texts(texts)
        rng = _rank_0_rng(rng)
    sequences, estimator.n_truncated_ = encode_texts(estimator.tokenizer_, texts, max_length=estimator.max_length_)
    estimator.decode_length_ = max(estimator.decode_length_, _longest(sequences))
    train(estimator, sequences, epochs=1, rng=rng)
    return estimator


def _rank_0_rng(rng):
    """A random source in the state of rank 0's ``rng``, in every process of a data-parallel job."""
    shared = np.random.RandomState()
    shared.set_state(distributed_job.from_rank_0(rng.get_state()))
    return shared


def _longest(sequences):
    """The most tokens a training text holds (after the cut at max_length): decoding writes no more."""
    return max(1, max((len(s) for s in sequences), default=1))


def _tokenize(estimator, texts, pretrained, language_model, fit_checkpoints):
    """The vocabulary, ``max_length`` and the texts' token sequences (and how many were cut)."""
    settings = network.text_settings(estimator.get_params(deep=False))  # each "auto" resolved
    if pretrained is not None:  # reuse, never refit: a copy, so that training here leaves it as it was
        vocabulary, max_length = copy.deepcopy(pretrained.vocabulary_), pretrained.max_length_
    elif language_model is not None:
        vocabulary, max_length = None, settings["max_length"]
    else:
        tokenizer = None
        if fit_checkpoints is not None and fit_checkpoints.resume is not None:
            tokenizer = fit_checkpoints.resume.tokenizer  # the one the interrupted fit trained
        if estimator.data_parallel and distributed_job.rank() != 0:
            tokenizer = Tokenizer.from_str(distributed_job.from_rank_0(None))  # the one rank 0 has
        else:
            if tokenizer is None:
                tokenizer = train_tokenizer(texts, kind=settings["tokenizer"], vocab_size=settings["vocab_size"],
                                            lowercase=settings["lowercase"], max_length=settings["max_length"])
            if estimator.data_parallel:
                distributed_job.from_rank_0(tokenizer.to_str())
        if fit_checkpoints is not None:
            fit_checkpoints.tokenizer = tokenizer
        vocabulary, max_length = Vocabulary(tokenizer), settings["max_length"]
    tokenizer = language_model.tokenizer if vocabulary is None else vocabulary.tokenizer
    sequences, n_truncated = encode_texts(tokenizer, texts, max_length=max_length)
    if vocabulary is None:  # the decoder writes the pretrained tokens that the training texts hold
        vocabulary = Vocabulary.for_pretrained(language_model, sequences)
    return vocabulary, max_length, sequences, n_truncated


def check_fit(estimator, shapes, n_texts):
    """Check the combinations of parameters, before a failed fit has replaced any fitted state: the
    estimator's training parameters, and those of ``shapes`` (the estimator, or a fitted model to start
    from) that shape the network. Returns the pretrained model ``encoder=`` names, or None."""
    check_training(estimator, n_texts)
    params = shapes.get_params(deep=False)
    encoder, decoder = network.encoder_decoder(params)
    language_model = None
    if pretrained_models.is_pretrained(encoder):
        language_model = pretrained_models.load(encoder)
        if params["embedding_dim"] not in (None, language_model.hidden_size):
            raise ValueError(f"embedding_dim({params['embedding_dim']}) must equal the pretrained encoder's width "
                             f"({language_model.hidden_size}): the decoder's token embeddings start from the "
                             f"model's. Leave embedding_dim=None.")
        settings = network.text_settings(params)
        for name in TOKENIZER_PARAMS:
            # Only what "auto" gives such a model, which is also what earlier versions saved as the default.
            if settings[name] != network.SEQUENCE_TEXT[name]:
                raise ValueError(f"{name}={params[name]!r} with a pretrained encoder: the model's own tokenizer is "
                                 f"used, not one trained in fit. Leave {name} at its default ('auto').")
        specials = len(language_model.prefix) + len(language_model.suffix)
        max_length = settings["max_length"]
        if max_length + specials > language_model.max_positions:
            raise ValueError(f"max_length({max_length}) plus the model's {specials} special tokens exceeds "
                             f"the {language_model.max_positions} positions of {encoder!r}: set max_length <= "
                             f"{language_model.max_positions - specials}.")
    elif params["encoder"] is not None and params["encoder"] not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS} or a pretrained model, got {params['encoder']!r}.")
    if params["static_encoder"]:
        if language_model is None:
            raise ValueError(f"static_encoder=True trains a static student of a pretrained encoder, but encoder="
                             f"{encoder!r} is trained from scratch: pass encoder=<a pretrained model folder or "
                             f"package>, or leave static_encoder=False.")
        if estimator.data_parallel:
            raise ValueError("static_encoder=True trains its student in each process alone, not over a data-parallel "
                             "job: set data_parallel=False (the student trains in seconds to minutes), or fit the "
                             "model over the job and make its static student in one process afterwards.")
        if decoder == "pretrained" or estimator.compile:
            raise ValueError(f"static_encoder=True works with a decoder of its own and without compile; got "
                             f"decoder={decoder!r} and compile={estimator.compile}: choose a from-scratch decoder "
                             f"(one of {SCRATCH_DECODERS}) and compile=False.")
    if decoder == "pretrained":
        if language_model is None:
            raise ValueError(f"decoder='pretrained' starts the decoder from the pretrained encoder's checkpoint, but "
                             f"encoder={encoder!r} is trained from scratch: pass encoder=<a pretrained model folder "
                             f"or package>, or choose a from-scratch decoder (one of {SCRATCH_DECODERS}).")
        pretrained_models.check_decoder_support(language_model)
        defaults = network.shaping_defaults(type(shapes))
        for name in PRETRAINED_DECODER_SIZES:
            if params[name] != defaults[name]:
                raise ValueError(f"{name}={params[name]!r} with decoder='pretrained': the checkpoint's own config "
                                 f"sets the decoder's sizes. Leave {name} at its default ({defaults[name]!r}).")
    width = network.embedding_dim(params)
    if "transformer" in (encoder, decoder) and width % params["num_heads"]:
        raise ValueError(f"embedding_dim({width}) must be divisible by num_heads({params['num_heads']}) for "
                         f"a Transformer encoder or decoder.")
    return language_model


def check_training(estimator, n_texts):
    """Check the estimator's training parameters against each other and the number of texts."""
    if estimator.patience is not None and estimator.validation_fraction == 0:
        raise ValueError(f"patience={estimator.patience} stops on validation loss, but validation_fraction=0 "
                         f"holds out no texts: set validation_fraction > 0, or patience=None.")
    n_validation(estimator.validation_fraction, n_texts)


def train(estimator, sequences, labels=None, *, epochs, rng, pretrained=None, fit_checkpoints=None):
    """Train ``estimator.net_`` for ``epochs`` on the token sequences (initialising it first if new),
    with a validation split, the frozen encoder's cache, and checkpoints when given."""
    net = estimator.net_
    if not is_cuda(estimator.device_):
        heap.limit_fragmentation()  # the process's memory bounded by the batch, not by the number of batches
    if fit_checkpoints is not None:
        fit_checkpoints.fit_rng_state = rng.get_state()  # before any draw: a resumed fit makes the same ones
    resume = fit_checkpoints.resume if fit_checkpoints is not None else None
    n_valid = n_validation(estimator.validation_fraction, len(sequences))
    order = rng.permutation(len(sequences))
    net.set_params(max_epochs=epochs, shuffle_seed=int(rng.randint(2**31 - 1)))
    # A private torch random state: reproducible with random_state, and the caller's is untouched.
    with torch.random.fork_rng(devices=fork_rng_devices(estimator.device_)):
        torch.manual_seed(int(rng.randint(2**31 - 1)))
        starting = not net.initialized_
        if starting:
            net.initialize()
            if pretrained is not None:
                # Through autoencoder_of on both sides: either network may be compiled, whose state dict
                # names every weight "_orig_mod.<name>".
                source = network.autoencoder_of(pretrained.net_.module_).state_dict()
                network.autoencoder_of(net.module_).load_state_dict(source)
        dataset = TokenDataset(sequences, labels)
        if network.encoder_is_frozen(net.module_):
            dataset.encoder_hidden = _frozen_encoder_outputs(estimator, sequences, noisy=order[n_valid:], rng=rng)
        spec = network.spec_of(net)
        fresh = starting and pretrained is None and resume is None
        # A bag of words starts from LSA also where it resumes (the checkpoint's weights then replace the
        # start's): an autoencoder's fit is held near that start throughout (anchor_).
        lsa = starting and pretrained is None and spec.encoder == "bow"
        if lsa:
            # From a random start a small model can map every text to nearly one vector, and early stopping
            # ends it there; LSA of the training texts starts it with them apart (bench_small_widths.py). A bag
            # decoder starts at their token frequencies: learning those from 0 would move that start at once.
            autoencoder, training_texts = network.autoencoder_of(net.module_), dataset.sequences[order[n_valid:]]
            start_from_lsa(autoencoder.encoder, training_texts)
            if not autoencoder.decoder.is_sequence:
                start_bag_decoder(autoencoder.decoder, training_texts)
        if lsa or (fresh and spec.pretrained):
            # A random projection to the latent would lose much of what the encoder starts with: keep its
            # principal components.
            _start_bottleneck_from_pca(estimator, dataset, order[n_valid:], rng=rng)
        if lsa and labels is None:
            # Trained freely, the reconstruction can lose what LSA's start held on some data (bench_default_lsa.py).
            net.anchor_ = _start_anchor(network.autoencoder_of(net.module_))
        train_set, valid = dataset.subset(order[n_valid:]), dataset.subset(order[:n_valid]) if n_valid else None
        net.set_params(train_split=predefined_split(valid) if valid is not None else None)
        writer = None
        if fit_checkpoints is not None:
            if resume is not None:  # the finished epochs are skipped: skorch trains max_epochs more
                resume.load_into(net)
                net.max_epochs = epochs - resume.epochs
            writer = dict(net.callbacks_)[checkpoints.CALLBACK_NAME]
            writer.start(fit_checkpoints)
        try:
            net.partial_fit(train_set)
        finally:
            net.max_epochs = epochs
            net.anchor_ = None  # this fit's own: a later partial_fit trains on from wherever this one ends
            net.leave_data_parallel()  # where training raised before its end
            if writer is not None:
                writer.stop()
        net.raise_if_interrupted()  # skorch's partial_fit swallows a Ctrl-C: the caller's program stops
    if fit_checkpoints is not None:  # finished: nothing left to resume
        fit_checkpoints.remove()


def _frozen_encoder_outputs(estimator, sequences, *, noisy, rng):
    """Each text's encoder output, computed once for the whole fit (the encoder is frozen).

    With ``noise``, each training text (``noisy``, their indices) is corrupted once, with one draw for
    the fit rather than one per epoch, and its corrupted copy is encoded.
    """
    noise = estimator.net_.noise  # the rate build_net resolved from estimator.noise
    if noise:
        noise_rng = np.random.default_rng(int(rng.randint(2**31 - 1)))
        sequences = list(sequences)
        for i in np.sort(noisy):
            sequences[i] = corrupt(sequences[i], noise=noise, noise_type=estimator.noise_type,
                                   rng=noise_rng)
    encoder = network.autoencoder_of(estimator.net_.module_).encoder

    def encoded(items):
        return batched(estimator.net_, items, lambda inputs, _: encoder(inputs["input_ids"], inputs["lengths"]),
                       batch_size=estimator.inference_batch_size, targets=False)

    if estimator.data_parallel:  # each process encodes its share, and every process gets them all
        return distributed_job.computed_in_shares(len(sequences), lambda part: encoded([sequences[i] for i in part]))
    return encoded(sequences)


def _start_bottleneck_from_pca(estimator, dataset, train_indices, *, rng, max_texts=4096):
    """Start the bottleneck of a pretrained encoder (or of a bag of words started from LSA) as the PCA of its
    outputs on the training texts (up to ``max_texts`` of them): the best linear summary of the encoder's
    vectors at this size, from which training goes on. The principal components are mixed by a random
    rotation and scaled to a mean variance of 1 per latent unit: distances between texts stay those of
    the principal subspace (so clustering and similarity keep the encoder's geometry, which whitening
    would lose), while no unit carries most of the variance. Read from the frozen encoder's cache, or
    computed once on a sample when the encoder is trained."""
    autoencoder = network.autoencoder_of(estimator.net_.module_)
    hidden = dataset.encoder_hidden
    sample = train_indices
    if len(train_indices):
        sample = np.sort(rng.choice(train_indices, size=min(len(train_indices), max_texts), replace=False))
    if hidden is None:
        hidden = batched(estimator.net_, dataset.sequences[sample],
                         lambda inputs, _: autoencoder.encoder(inputs["input_ids"], inputs["lengths"]),
                         batch_size=estimator.inference_batch_size)
    else:
        hidden = hidden[sample]
    # A TF-IDF bag of words: from its projection alone (LSA's, at the start), the MLP's columns weighing 0.
    columns = getattr(autoencoder.encoder, "projection", None) or slice(None)
    latent_dim, width = autoencoder.latent_dim, hidden.shape[1]
    hidden = hidden[:, columns]
    if len(hidden) <= latent_dim or hidden.shape[1] < latent_dim:
        return  # too few texts or too narrow a model for a PCA of that size: the random start stays
    pca = PCA(latent_dim, random_state=0).fit(hidden)
    rotation, _ = np.linalg.qr(rng.standard_normal((latent_dim, latent_dim)))  # (L, L), orthogonal
    weight = np.zeros((latent_dim, width), dtype=np.float32)  # (L, H)
    weight[:, columns] = rotation @ pca.components_ / np.sqrt(pca.explained_variance_.mean())
    start_from(autoencoder.bottleneck, weight=torch.from_numpy(weight),
               bias=torch.from_numpy((-weight[:, columns] @ pca.mean_).astype(np.float32)))


def _start_anchor(autoencoder):
    """The encoder's and the bottleneck's trainable weights, each with a copy of its value now (the start):
    ``AutoencoderNet.anchor_``."""
    return [(weight, weight.detach().clone()) for name, weight in autoencoder.named_parameters()
            if name.startswith(("encoder.", "bottleneck.")) and weight.requires_grad]


def n_validation(validation_fraction, n_texts):
    """How many of ``n_texts`` texts are held out for the validation loss."""
    if validation_fraction == 0:
        return 0
    if n_texts < 2:
        raise ValueError(f"validation_fraction={validation_fraction} needs at least 2 texts to hold one out, got "
                         f"{n_texts}: pass more texts or set validation_fraction=0 and patience=None.")
    return min(max(1, round(validation_fraction * n_texts)), n_texts - 1)


def _partial_fit_rng(estimator):
    """The random source of one ``partial_fit`` call: with an int ``random_state``, seeded by it and by the
    epochs trained so far, so that calls are reproducible yet each holds out other texts."""
    if isinstance(estimator.random_state, Integral):
        seed = np.random.SeedSequence([estimator.random_state, len(estimator.net_.history)]).generate_state(1)
        return np.random.RandomState(seed)
    return check_random_state(estimator.random_state)
