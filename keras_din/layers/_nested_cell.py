"""The `AttentionalGRUCell` inside `InterestExtractor` and `InterestEvolution`."""

from keras_din.layers.attentional_gru_cell import AttentionalGRUCell


class NestedCell(AttentionalGRUCell):
    """A DIEN layer's cell, whose weights its owner saves as its own.

    keras-din 0.2 kept the GRU's four weights as the DIEN layers' own
    variables, so its `.keras` files hold them in the layer's own entry
    (`.../interest_extractor/vars/0` to `3`), where a sublayer's would be
    in an entry of its own (`.../interest_extractor/cell/vars/...`). The
    owner's `save_own_variables` and `load_own_variables` call
    `save_in_owner` and `load_from_owner`, and the cell's own entry stays
    empty: files of 0.2 load here, and files saved here load in 0.2.
    """

    def save_own_variables(self, store):
        pass  # saved by the owner: `save_in_owner`

    def load_own_variables(self, store):
        pass  # loaded by the owner: `load_from_owner`

    def save_in_owner(self, store):
        """Writes the four weights into the owner's `store`, in order."""
        super().save_own_variables(store)

    def load_from_owner(self, store):
        """Reads the four weights from the owner's `store`."""
        super().load_own_variables(store)
