package org.prism.elasticsearch.analysis;

import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;

/**
 * Lowercases every token, as the {@code lowercase} filter of the missing analysis-common module does.
 *
 * <p>A custom analyzer can only name filters, and without that module {@code lowercase} is not one.
 */
@NamedComponent("prism_lowercase")
public final class LowerCaseFilterFactory implements TokenFilterFactory {

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new LowerCaseFilter(tokenStream);
    }

    /** Wildcard, prefix and fuzzy terms of a query string are normalized with this, so they must lowercase too. */
    @Override
    public TokenStream normalize(TokenStream tokenStream) {
        return create(tokenStream);
    }
}
