"""How a model becomes a TFX pipeline: the one factory (`factory`), which
reads all it needs to know of a model from its `contract.definition`, and the custom
components it adds to TFX's: the data gate after ExampleValidator
(`data_gate`, with the checks in `data_validation`), the local servability
check before the Pusher (`servability`), the Pusher's whole-version copy
(`pusher`), and the run page's evaluation summary (`evaluation_summary`)."""
