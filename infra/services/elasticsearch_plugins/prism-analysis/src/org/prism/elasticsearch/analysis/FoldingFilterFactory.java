package org.prism.elasticsearch.analysis;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;

/**
 * Folds accented and other non-ASCII letters to their ASCII form, so "José" matches "jose".
 *
 * <p>Stands in for the built-in {@code asciifolding}, which lives in the analysis-common module the
 * integ-test distribution lacks; the distinct name keeps it from clashing where that module exists.
 */
@NamedComponent("prism_folding")
public final class FoldingFilterFactory implements TokenFilterFactory {

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new ASCIIFoldingFilter(tokenStream);
    }

    /** Wildcard, prefix and fuzzy terms of a query string are normalized with this, so they must fold too. */
    @Override
    public TokenStream normalize(TokenStream tokenStream) {
        return create(tokenStream);
    }
}
