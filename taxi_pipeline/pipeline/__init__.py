"""How a model becomes a TFX pipeline: the one factory (`factory`), what it
needs to know about a model (`definition.ModelDefinition`), and the custom
components it adds to TFX's: the data gate after ExampleValidator
(`data_gate`, with the checks in `data_validation`), the local servability
check before the Pusher (`servability`), and the run page's evaluation summary
(`evaluation_summary`)."""
