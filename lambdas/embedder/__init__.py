"""EmbedderLambda: AnalysisComplete -> text from the analysis -> embedding -> `embeddings`."""
