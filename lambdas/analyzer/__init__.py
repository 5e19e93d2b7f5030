"""AnalyzerLambda: ImageProcessed -> vision analysis (Anthropic, or `local` offline) -> AnalysisComplete."""
