"""A Transformer decoder warm-started from a pretrained checkpoint (Rothe, Narayan & Severyn 2020,
"Leveraging Pre-trained Checkpoints for Sequence Generation Tasks"): the layers of a BERT-like model,
its self-attention made causal, with a cross-attention added (new weights) that reads the latent vector
as a few memory slots."""

from torch import nn

from .base import PrefixDecoding, output_layer


class PretrainedDecoder(PrefixDecoding, nn.Module):
    """(B, L) latent and (B, T) BOS-prefixed ids -> (B, T, V) logits, or one step at a time.

    ``model`` is a Hugging Face model built as a decoder (its config with ``is_decoder=True`` and
    ``add_cross_attention=True``: causal self-attention, and cross-attention that reads
    ``encoder_hidden_states``), called as ``model(inputs_embeds=..., encoder_hidden_states=...,
    use_cache=False)`` and returning ``last_hidden_state`` (B, T, C). Its position embeddings and layers
    are the checkpoint's (the caller copies them in); its token embeddings are replaced here by
    ``vocab_size`` rows, the decoder's own vocabulary (PAD at id 0), tied to the logits layer. The
    model's own dropout (its config's) applies.

    The latent vector becomes ``memory_slots`` vectors of the model's width that cross-attention reads,
    as in ``transformer.TransformerDecoder``: a few slots give it something to choose between.
    """

    is_sequence = True

    def __init__(self, *, model, latent_dim, vocab_size, memory_slots=4):
        super().__init__()
        checkpoint_tokens = model.get_input_embeddings()
        self.width, self.memory_slots = checkpoint_tokens.embedding_dim, memory_slots
        model.set_input_embeddings(nn.Embedding(vocab_size, self.width, padding_idx=0,
                                                device=checkpoint_tokens.weight.device,
                                                dtype=checkpoint_tokens.weight.dtype))
        self.model = model
        self.latent_to_memory = nn.Linear(latent_dim, memory_slots * self.width)
        self.output = output_layer(in_dim=self.width, vocab_size=vocab_size, tied_embedding=self.embedding)

    @property
    def embedding(self):
        return self.model.get_input_embeddings()  # nn.Embedding (V, C): the decoder's vocabulary

    def _memory(self, latent):
        return self.latent_to_memory(latent).view(latent.shape[0], self.memory_slots, self.width)  # (B, M, C)

    def _decode_memory(self, memory, decoder_input_ids):
        # The ids are the decoder's, not the model's: they go in as embeddings, so that every model
        # gives them the positions of an unpadded text (RoBERTa would derive positions from where its
        # own pad id sits in input_ids). Padding sits after each row's text: the causal mask hides it.
        hidden = self.model(inputs_embeds=self.embedding(decoder_input_ids), encoder_hidden_states=memory,
                            use_cache=False).last_hidden_state  # (B, T, C)
        return self.output(hidden)  # (B, T, V)
