package org.prism.elasticsearch.analysis;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.IntSetting;

/**
 * Emits the leading 1 to 20 characters of each token ("widget": w, wi, wid, ...) for search-as-you-type.
 *
 * <p>The original token is dropped, as with the built-in {@code edge_ngram} filter, so an index-time
 * analyzer using it should be paired with a search analyzer that does not split the query into prefixes.
 * A filter defined in index settings may change the lengths with {@code min_gram} and {@code max_gram}.
 */
@NamedComponent("prism_edge_ngram")
public final class EdgeNGramFilterFactory implements TokenFilterFactory {

    /** Settings of a filter defined in an index's analysis settings; a bare name gets the defaults. */
    @AnalysisSettings
    public interface Grams {
        @IntSetting(path = "min_gram", defaultValue = 1)
        int minGram();

        @IntSetting(path = "max_gram", defaultValue = 20)
        int maxGram();
    }

    private final int minGram;
    private final int maxGram;

    @Inject
    public EdgeNGramFilterFactory(Grams grams) {
        minGram = grams.minGram();
        maxGram = grams.maxGram();
        // Checked here rather than on the first token stream, so a bad definition fails index creation.
        if (minGram < 1 || maxGram < minGram) {
            throw new IllegalArgumentException(
                "prism_edge_ngram needs 1 <= min_gram <= max_gram, got min_gram="
                    + minGram + " and max_gram=" + maxGram
            );
        }
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new EdgeNGramTokenFilter(tokenStream, minGram, maxGram, false);
    }
}
